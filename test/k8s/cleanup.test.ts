import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { waitFor } from './control-plane.ts';

// A test process that dies leaves nothing running: each case starts a control plane (API only) in a
// child Node.js process, ends that process in a different way, and checks that every component
// process and the temp folder are gone.

const controlPlane = new URL('./control-plane.ts', import.meta.url).href;

interface Started {
  dir: string;
  pids: number[];
  child: ReturnType<typeof spawn>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startInChild(then: string): Promise<Started> {
  const script = `
    import { readFileSync } from 'node:fs';
    import { startControlPlane } from ${JSON.stringify(controlPlane)};
    const cp = await startControlPlane();
    const pids = readFileSync(cp.dir + '/pids', 'utf8').trim().split('\\n').map(Number);
    console.log(JSON.stringify({ dir: cp.dir, pids }));
    ${then}
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const lines = createInterface({ input: child.stdout! });
  const first = await Promise.race([
    new Promise<string>((r) => lines.once('line', r)),
    exited.then((e) => {
      throw new Error(`child exited before the control plane was up: ${JSON.stringify(e)}`);
    }),
  ]);
  const { dir, pids } = JSON.parse(first) as { dir: string; pids: number[] };
  assert.equal(pids.length, 2, 'etcd and kube-apiserver');
  for (const pid of pids) assert.ok(alive(pid), `component ${pid} runs`);
  return { dir, pids, child, exited };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function assertCleanedUp(s: Started, what: string): Promise<void> {
  await waitFor(`${what}: components gone and temp folder removed`, async () => s.pids.every((p) => !alive(p)) && !existsSync(s.dir), 30_000);
}

describe('a dying test process leaves nothing running', () => {
  test('SIGTERM: the signal handler stops everything and exits 143', { timeout: 90_000 }, async () => {
    const s = await startInChild('setInterval(() => {}, 1000);');
    s.child.kill('SIGTERM');
    const e = await s.exited;
    assert.equal(e.code, 143);
    await assertCleanedUp(s, 'SIGTERM');
  });

  test('process.exit without stop(): the exit handler kills the components', { timeout: 90_000 }, async () => {
    const s = await startInChild('process.exit(1);');
    assert.equal((await s.exited).code, 1);
    await assertCleanedUp(s, 'process.exit');
  });

  test('SIGKILL: the watchdog reaps the components and the folder', { timeout: 90_000 }, async () => {
    const s = await startInChild('setInterval(() => {}, 1000);');
    s.child.kill('SIGKILL');
    assert.equal((await s.exited).signal, 'SIGKILL');
    await assertCleanedUp(s, 'SIGKILL');
  });
});
