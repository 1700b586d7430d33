import { serviceVersion } from '../version.ts';

// `analytics-api <command> …`: a small dispatcher. Each command lives in its own module, loaded
// only when used, and gets the arguments after its name. Add a command by adding an entry to
// `commands`.
//
// Exit codes: 0 success, 1 failure, 2 bad usage, 130 interrupted. Errors are one line on stderr.

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  /** stderr is a terminal: long commands show their progress there. */
  stderrIsTerminal?: boolean;
  /** Aborted on SIGINT/SIGTERM; long commands stop cleanly and exit 130. */
  signal: AbortSignal;
}

export interface CliCommand {
  summary: string;
  run(args: string[], io: CliIO): Promise<number>;
}

const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

const commands: Record<string, { summary: string; load: () => Promise<CliCommand> }> = {
  backup: {
    summary: 'create, list, verify, restore and prune backups of the model store and Redis data',
    load: async () => (await import('../backup/command.ts')).backupCommand,
  },
  serve: {
    summary: 'run the inference service (configured by the environment)',
    load: async () => (await import('./serve.ts')).serveCommand,
  },
  import: {
    summary: "validate an ONNX model as the service would and store it as a version (the operator's import Jobs)",
    load: async () => (await import('./import.ts')).importCommand,
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'usage: analytics-api <command> [options]',
    '',
    'commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'analytics-api <command> --help shows the options of a command.',
  ].join('\n');
}

/** The CLI with its input and output given: the process (runProcess below) or a test. */
export async function main(argv: string[], io: CliIO): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (err) {
    // One line, like every other error; ANALYTICS_API_DEBUG=1 shows the stack.
    const detail = io.env.ANALYTICS_API_DEBUG ? ((err as Error)?.stack ?? String(err)) : String((err as Error)?.message ?? err).replace(/\s*\n\s*/g, '; ');
    io.stderr(`analytics-api: unexpected error: ${detail}\n`);
    return EXIT.failed;
  }
}

async function dispatch(argv: string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    (name === undefined ? io.stderr : io.stdout)(`${usage()}\n`);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-V') {
    io.stdout(`analytics-api ${serviceVersion}\n`);
    return EXIT.ok;
  }
  const command = commands[name];
  if (!command) {
    io.stderr(`analytics-api: unknown command "${name}"; commands: ${Object.keys(commands).join(', ')} (see analytics-api --help)\n`);
    return EXIT.usage;
  }
  return (await command.load()).run(rest, io);
}

/** Runs the CLI as a process: real stdout/stderr/env, SIGINT/SIGTERM abort the command. */
export async function runProcess(argv: string[]): Promise<number> {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(EXIT.interrupted); // a second signal: stop now
    process.stderr.write(`analytics-api: ${signal}: stopping (again to force)\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await main(argv, {
      stdout: (t) => process.stdout.write(t),
      stderr: (t) => process.stderr.write(t),
      env: process.env,
      stderrIsTerminal: process.stderr.isTTY === true,
      signal: controller.signal,
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
