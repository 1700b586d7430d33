import { parseArgs } from 'node:util';
import type { CliCommand } from './cli.ts';
import { configSchema, loadConfig } from '../config.ts';

// `analytics-api serve`: the inference service (what `node service/main.ts` runs), configured by
// the environment as the README's Configuration table says.

const HELP = `usage: analytics-api serve

Runs the inference service: the REST API and the Open Inference Protocol on HOST:PORT, gRPC on
GRPC_PORT, until SIGINT or SIGTERM. Configured by the environment (README.md, Configuration):
${wrap(Object.keys(configSchema.shape).join(', '), 96, '  ')}
A bad value stops it before it listens, with a line naming each variable.

example:
  PORT=8080 SAMPLE_MODELS_DIR=models analytics-api serve

Exit status: 0 stopped by a signal, 1 failure (a port taken, ...), 2 bad configuration or usage.`;

function wrap(text: string, width: number, indent: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + word.length + 1 > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line].map((l) => indent + l).join('\n');
}

export const serveCommand: CliCommand = {
  summary: 'run the inference service (configured by the environment)',
  async run(args, io) {
    let values;
    try {
      ({ values } = parseArgs({ args, options: { help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true }));
    } catch (err) {
      io.stderr(`analytics-api serve: ${(err as Error).message}; the service takes its settings from the environment (see analytics-api serve --help)\n`);
      return 2;
    }
    if (values.help) {
      io.stdout(`${HELP}\n`);
      return 0;
    }
    let config;
    try {
      config = loadConfig(io.env);
    } catch (err) {
      io.stderr(`${(err as Error).message}\n`);
      return 2;
    }
    // Listening keeps the process alive; serve() exits it on SIGINT/SIGTERM.
    const { serve } = await import('../serve.ts');
    await serve(config);
    return 0;
  },
};
