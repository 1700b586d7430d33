import Fastify from 'fastify';

// The ceiling: a Fastify POST that parses the same JSON body as a prediction and answers a body
// of the same shape, with no model and no cache.
const app = Fastify({ logger: false });
app.post('/bare/:model_id', async (request) => {
  const { features } = request.body as { features: Record<string, number> };
  let sum = 0;
  for (const v of Object.values(features)) sum += v;
  return {
    prediction: sum > 10 ? 1 : 0,
    confidence: 0.97,
    probabilities: [0.97, 0.02, 0.01],
    timestamp: new Date().toISOString(),
    model_version: '1',
    model_id: (request.params as { model_id: string }).model_id,
    prediction_id: crypto.randomUUID(),
  };
});
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) });
process.send?.({ port: (app.server.address() as { port: number }).port });
