import { main } from '../../service/cli/cli.ts';

// The `analytics-api` CLI run in this process, as the bin runs it (same dispatcher, exit codes and
// one-line errors), with its output collected: 50 ms where a child process takes 0.7 s. Tests where
// the process itself is the point (signals, another uid, a kill mid-write) spawn bin/analytics-api.js.

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export async function cli(argv: string[], env: NodeJS.ProcessEnv, signal: AbortSignal = new AbortController().signal): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env,
    signal,
  });
  return { code, signal: null, stdout, stderr };
}
