import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { manifestFiles } from '../../infra/app.ts';
import { clusterNeed, wslconfigFigures } from '../../infra/capacity.ts';
import { INOTIFY_MIN, formatReport, runDoctor, type Check } from '../../infra/doctor.ts';
import { figures } from '../../contract/figures.ts';
import { repoRoot, run } from './helpers.ts';

// `make doctor` against fake /proc and /sys trees: a ready WSL2 machine passes, and each
// problem fails (or warns) with its fix.

const base = mkdtempSync(join(tmpdir(), 'infra-doctor-'));
after(() => rmSync(base, { recursive: true, force: true }));

const need = clusterNeed(manifestFiles().flatMap((f) => f.objects));
const GiB = 2 ** 30;
let n = 0;

interface Machine {
  version?: string;
  cpus?: number;
  memGiB?: number;
  swapGiB?: number;
  watches?: number;
  instances?: number;
  cgroup2?: boolean;
  dockerSock?: boolean;
  wslConf?: string;
  commands?: string[];
  listening?: number[];
}

const WSL2_VERSION =
  'Linux version 5.15.167.4-microsoft-standard-WSL2 (root@f9c826d3017f) (gcc (GCC) 11.2.0, GNU ld (GNU Binutils) 2.37) #1 SMP Tue Nov 5 00:21:55 UTC 2024';

/** A fake root (proc/, sys/, etc/, var/run/), a PATH folder and a HOME. */
function machine(m: Machine = {}): { root: string; env: NodeJS.ProcessEnv; home: string } {
  const root = join(base, `m${++n}`);
  const file = (path: string, text: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  file('proc/version', `${m.version ?? WSL2_VERSION}\n`);
  file('proc/cpuinfo', Array.from({ length: m.cpus ?? 8 }, (_, i) => `processor\t: ${i}\nvendor_id\t: GenuineIntel\n\n`).join(''));
  const kb = (g: number) => Math.round((g * GiB) / 1024);
  file('proc/meminfo', `MemTotal:       ${kb(m.memGiB ?? 15.6)} kB\nMemFree:        ${kb(10)} kB\nSwapTotal:      ${kb(m.swapGiB ?? 4)} kB\n`);
  file('proc/sys/fs/inotify/max_user_watches', `${m.watches ?? 524288}\n`);
  file('proc/sys/fs/inotify/max_user_instances', `${m.instances ?? 8192}\n`);
  const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
  const rows = (m.listening ?? []).map(
    (p, i) =>
      `   ${i}: 00000000:${p.toString(16).toUpperCase().padStart(4, '0')} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0\n`,
  );
  file('proc/net/tcp', header + rows.join(''));
  file('proc/net/tcp6', header);
  if (m.cgroup2 ?? true) file('sys/fs/cgroup/cgroup.controllers', 'cpuset cpu io memory hugetlb pids rdma misc\n');
  if (m.dockerSock ?? true) file('var/run/docker.sock', '');
  if (m.wslConf !== undefined) file('etc/wsl.conf', m.wslConf);
  const bin = join(root, 'bin');
  mkdirSync(bin);
  for (const c of m.commands ?? ['docker', 'kind', 'kubectl', 'helm']) {
    writeFileSync(join(bin, c), '#!/bin/sh\n');
    chmodSync(join(bin, c), 0o755);
  }
  const home = join(root, 'home');
  mkdirSync(home);
  return { root, env: { PATH: bin, HOME: home }, home };
}

function doctor(m: Machine = {}, projectDir = '/home/me/analytics-api'): Check[] {
  const { root, env } = machine(m);
  return runDoctor({ root, env, projectDir, need });
}

function check(checks: Check[], title: string): Check {
  const c = checks.find((x) => x.title === title);
  assert.ok(c, `a check titled ${title}`);
  return c;
}

describe('make doctor (infra/doctor.ts)', () => {
  test('a WSL2 machine set up as docs/wsl2.md says passes every check', () => {
    const checks = doctor();
    assert.deepEqual(
      checks.filter((c) => c.status !== 'ok'),
      [],
    );
    assert.match(check(checks, 'WSL2 kernel').detail, /microsoft-standard-WSL2/);
    assert.match(formatReport(checks), /ready for make cluster/);
  });

  test('WSL 1 fails with the command that converts it; another Linux only warns', () => {
    const wsl1 = check(
      doctor({
        version: 'Linux version 4.4.0-19041-Microsoft (Microsoft@Microsoft.com) (gcc version 5.4.0 (GCC) ) #1237-Microsoft Sat Sep 11 14:32:00 PST 2021',
      }),
      'WSL2 kernel',
    );
    assert.equal(wsl1.status, 'fail');
    assert.match(wsl1.fix ?? '', /wsl --set-version/);
    const linux = check(doctor({ version: 'Linux version 6.8.0-45-generic (buildd@lcy02-amd64-115) #45-Ubuntu SMP' }), 'WSL2 kernel');
    assert.equal(linux.status, 'warn');
  });

  test('cgroup v1 fails with the .wslconfig kernel command line', () => {
    const c = check(doctor({ cgroup2: false }), 'cgroup v2');
    assert.equal(c.status, 'fail');
    assert.match(c.fix ?? '', /cgroup_no_v1=all/);
    assert.match(c.fix ?? '', /wsl --shutdown/);
  });

  test("CPUs and memory are measured against the manifests' requests", () => {
    const steady = wslconfigFigures(need.steady);
    const rollout = wslconfigFigures(need.rollout);
    // The figures come from the service's 2-core / 4 GiB requests, two replicas and a surge pod.
    assert.ok(need.steady.cpu >= 2 * figures.resources.requests.cpu);
    assert.ok(need.rollout.memoryBytes >= 3 * figures.resources.requests.memoryGiB * GiB);

    const few = check(doctor({ cpus: 4 }), 'CPUs');
    assert.equal(few.status, 'fail');
    assert.match(few.fix ?? '', new RegExp(`processors=${rollout.processors}`));
    assert.match(few.detail, /2 cores and 4 GiB/);
    const enoughButNoRollout = check(doctor({ cpus: steady.processors }), 'CPUs');
    assert.equal(enoughButNoRollout.status, 'warn');
    assert.match(enoughButNoRollout.fix ?? '', /--replicas=1/);
    assert.equal(check(doctor({ cpus: rollout.processors }), 'CPUs').status, 'ok');

    const little = check(doctor({ memGiB: 7.7 }), 'memory');
    assert.equal(little.status, 'fail');
    assert.match(little.fix ?? '', new RegExp(`memory=${rollout.memoryGB}GB`));
    // What a VM with memory=<N>GB reports (the kernel keeps a few hundred MiB).
    assert.equal(check(doctor({ memGiB: steady.memoryGB - 0.4 }), 'memory').status, 'warn');
    assert.equal(check(doctor({ memGiB: rollout.memoryGB - 0.4 }), 'memory').status, 'ok');
    const noSwap = check(doctor({ swapGiB: 0 }), 'swap');
    assert.equal(noSwap.status, 'warn');
    assert.match(noSwap.fix ?? '', /swap=4GB/);
  });

  test('inotify limits below 524288 watches / 512 instances fail with the sysctl that raises them', () => {
    const checks = doctor({ watches: 8192, instances: 128 });
    const watches = check(checks, 'inotify max_user_watches');
    assert.equal(watches.status, 'fail');
    assert.match(watches.detail, /8192 < 524288/);
    assert.match(watches.fix ?? '', /sysctl -w fs\.inotify\.max_user_watches=524288/);
    assert.match(watches.fix ?? '', /sysctl\.d/);
    const instances = check(checks, 'inotify max_user_instances');
    assert.equal(instances.status, 'fail');
    assert.match(instances.fix ?? '', /fs\.inotify\.max_user_instances=512/);
    assert.deepEqual(INOTIFY_MIN, { max_user_watches: 524288, max_user_instances: 512 });
    assert.equal(check(doctor({ watches: 524288, instances: 512 }), 'inotify max_user_watches').status, 'ok');
  });

  test('missing docker, kind, kubectl or helm fail with where to get them; a stopped Docker says how to start it', () => {
    const checks = doctor({ commands: [], dockerSock: false });
    for (const name of ['docker', 'kind', 'kubectl', 'helm']) {
      const c = check(checks, name);
      assert.equal(c.status, 'fail', name);
      assert.ok(c.fix, `${name} has a fix`);
    }
    assert.match(check(checks, 'kind').fix ?? '', /kind\.sigs\.k8s\.io/);
    assert.match(check(checks, 'helm').fix ?? '', /helm\.sh/);
    const daemon = check(checks, 'docker daemon');
    assert.equal(daemon.status, 'fail');
    assert.match(daemon.fix ?? '', /systemd=true/, 'without systemd in /etc/wsl.conf: how to turn it on');
    const withSystemd = check(doctor({ dockerSock: false, wslConf: '[boot]\nsystemd=true\n' }), 'docker daemon');
    assert.match(withSystemd.fix ?? '', /systemctl enable --now docker/);
    assert.doesNotMatch(withSystemd.fix ?? '', /wsl\.conf/);
  });

  test('a project under /mnt/c fails: move it to the Linux filesystem', () => {
    const c = check(doctor({}, '/mnt/c/Users/me/analytics-api'), 'project folder');
    assert.equal(c.status, 'fail');
    assert.match(c.detail, /Windows drive/);
    assert.match(c.fix ?? '', /~\//);
    assert.equal(check(doctor({}, '/home/me/mnt/c'), 'project folder').status, 'ok');
  });

  test("a models folder the pods' uid cannot write fails with the chown that fixes it", () => {
    const m = machine();
    mkdirSync(join(m.home, 'analytics-models'), { mode: 0o755 });
    const checks = runDoctor({ root: m.root, env: m.env, projectDir: '/home/me/p', need });
    const c = check(checks, '~/analytics-models');
    if (process.getuid?.() === 1000) {
      assert.equal(c.status, 'ok');
    } else {
      assert.equal(c.status, 'fail');
      assert.match(c.fix ?? '', /chown -R 1000:1000/);
    }
    chmodSync(join(m.home, 'analytics-models'), 0o777);
    assert.equal(check(runDoctor({ root: m.root, env: m.env, projectDir: '/home/me/p', need }), '~/analytics-models').status, 'ok');
  });

  test('ports 80/443 already listening are reported', () => {
    const c = check(doctor({ listening: [443] }), 'ports 80 and 443');
    assert.equal(c.status, 'warn');
    assert.match(c.detail, /^443 already listening/);
  });

  test('the command line: exit 1 and a report with the fixes when a check fails', { timeout: 60_000 }, async () => {
    const { root } = machine({ watches: 8192 });
    const r = await run(process.execPath, [join(repoRoot, 'infra/doctor.ts'), '--root', root, '--project', '/home/me/p'], {
      env: { PATH: join(root, 'bin'), HOME: join(root, 'home') },
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /FAIL\s+inotify max_user_watches\s+8192 < 524288/);
    assert.match(r.stdout, /fix: sudo sysctl -w fs\.inotify\.max_user_watches=524288/);
    assert.match(r.stdout, /1 check\(s\) failed/);
    const ok = await run(process.execPath, [join(repoRoot, 'infra/doctor.ts'), '--root', machine().root, '--project', '/home/me/p'], {
      env: { PATH: join(root, 'bin'), HOME: join(root, 'home') },
    });
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  });

  test('docs/wsl2.md states the .wslconfig figures the doctor checks', () => {
    const doc = readFileSync(join(repoRoot, 'docs/wsl2.md'), 'utf8');
    const steady = wslconfigFigures(need.steady);
    const rollout = wslconfigFigures(need.rollout);
    assert.match(doc, new RegExp(`memory=${rollout.memoryGB}GB`));
    assert.match(doc, new RegExp(`processors=${rollout.processors}`));
    assert.match(doc, /swap=4GB/);
    assert.ok(doc.includes(`processors=${steady.processors}\``) && doc.includes(`memory=${steady.memoryGB}GB\``), 'the minimum');
    const cores = (a: { cpu: number }) => a.cpu.toFixed(1);
    const gib = (a: { memoryBytes: number }) => (a.memoryBytes / GiB).toFixed(1);
    assert.ok(doc.includes(`about ${cores(need.steady)} cores and ${gib(need.steady)} GiB`), 'steady-state requests');
    assert.ok(doc.includes(`about ${cores(need.rollout)} cores and ${gib(need.rollout)} GiB`), 'requests during a rollout');
    for (const target of ['make doctor', 'make cluster', 'make images', 'make deploy', 'make demo']) assert.ok(doc.includes(target), target);
  });
});
