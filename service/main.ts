import { loadConfig } from './config.ts';
import { serve } from './serve.ts';

// `node service/main.ts`: the service, as `analytics-api serve` runs it (serve.ts). Reads the
// configuration from the environment; a bad value exits 2 with a line per variable.
let config;
try {
  config = loadConfig();
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
await serve(config);
