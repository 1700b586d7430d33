import { buildApp } from './app.ts';
import { loadConfig } from './config.ts';
import { importSampleModels } from './sample-models.ts';

// Reads the configuration, builds the app and listens. Everything else lives in buildApp().
let config;
try {
  config = loadConfig();
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}

const app = await buildApp({ config });
if (config.SAMPLE_MODELS_DIR) await importSampleModels(config.SAMPLE_MODELS_DIR, app.ctx.store, app.ctx.registry, app.log);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.log.info({ signal }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}

await app.listen({ port: config.PORT, host: config.HOST });
