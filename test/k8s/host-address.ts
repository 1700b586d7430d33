import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ControlPlane } from './control-plane.ts';

// An address on this machine that is not loopback, for processes the test runs on the host but
// Kubernetes must name (an EndpointSlice refuses 127.0.0.0/8): a bridge of the harness's own with
// one /32 address from 172.31.253.0/24, and nothing attached. Traffic to it never leaves the
// machine. It goes with the control plane (a clean-up hook, so after a SIGKILL too) or remove().

export interface HostAddress {
  address: string;
  remove(): void;
}

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.status}`}`);
}

export function hostAddress(cp: ControlPlane): HostAddress {
  const n = randomInt(2, 254);
  const link = `khost${n}`;
  const address = `172.31.253.${n}`;
  const hook = join(cp.dir, 'cleanup.d', `30-host-address-${link}.sh`);
  mkdirSync(join(cp.dir, 'cleanup.d'), { recursive: true });
  writeFileSync(hook, `ip link del ${link} 2>/dev/null || true\n`);
  ip(['link', 'add', link, 'type', 'bridge']);
  ip(['addr', 'add', `${address}/32`, 'dev', link]);
  ip(['link', 'set', link, 'up']);
  return {
    address,
    remove() {
      spawnSync('ip', ['link', 'del', link]);
      rmSync(hook, { force: true });
    },
  };
}
