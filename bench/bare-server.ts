import cluster from 'node:cluster';
import Fastify from 'fastify';

// The ceiling: a Fastify POST that parses the same JSON body as a prediction and answers a body
// of the same shape, with no model and no cache. BARE_PROCESSES=2: two of them on one port
// (node:cluster), the ceiling of the service's HTTP_WORKERS=2.
const processes = Number(process.env.BARE_PROCESSES ?? 1);
const port = Number(process.env.PORT ?? 0);

if (cluster.isPrimary && processes > 1) {
  let listening = 0;
  for (let i = 0; i < processes; i++) cluster.fork().on('message', () => ++listening === processes && process.send?.({ port }));
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    process.exit(0);
  });
} else {
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
  await app.listen({ host: '127.0.0.1', port });
  process.send?.({ port: (app.server.address() as { port: number }).port });
}
