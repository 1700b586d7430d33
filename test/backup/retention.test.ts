import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { archiveName, parseArchiveName } from '../../service/backup/archive.ts';
import { pruneBackups } from '../../service/backup/prune.ts';
import { figures } from '../../contract/figures.ts';
import { runCli, sandbox } from './helpers.ts';

// Retention: archives are kept by the UTC timestamp in their names for figures.backup.retentionDays
// days (the specification's 7 days), and the newest archive is never deleted.

const DAY = 24 * 3600_000;

/** Archive files named `daysAgo` days (and a few minutes) before now; their content does not matter to prune. */
async function archivesAged(dest: string, daysAgo: number[], now = Date.now()): Promise<string[]> {
  const names: string[] = [];
  for (const d of daysAgo) {
    const name = archiveName(new Date(now - d * DAY - 5 * 60_000));
    await writeFile(join(dest, name), `archive from ${d} days ago`);
    names.push(name);
  }
  return names;
}

const archivesIn = async (dest: string) =>
  (await readdir(dest))
    .filter((n) => parseArchiveName(n))
    .sort()
    .reverse();

test(`prune keeps the archives of the last ${figures.backup.retentionDays} days of ten`, { timeout: 60_000 }, async (t) => {
  const dest = await sandbox(t);
  const keep = figures.backup.retentionDays;
  assert.ok(keep >= 3 && keep < 10, 'this test spreads ten daily archives around the retention');
  const names = await archivesAged(dest, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]); // newest first
  await writeFile(join(dest, 'README.txt'), 'not an archive');
  await writeFile(join(dest, '.analytics-backup-20991231T000000.000Z-1-abc.tar.gz.partial'), 'a backup in progress');

  const dry = await runCli(['backup', 'prune', '--dry-run', '--json'], { BACKUP_DIR: dest });
  assert.equal(dry.code, 0, dry.stderr);
  assert.deepEqual((JSON.parse(dry.stdout) as { deleted: string[] }).deleted, names.slice(keep));
  assert.deepEqual(await archivesIn(dest), names);

  const pruned = await runCli(['backup', 'prune'], { BACKUP_DIR: dest });
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.match(pruned.stdout, new RegExp(`kept ${keep} archives \\(retention ${keep} days`));
  assert.deepEqual(await archivesIn(dest), names.slice(0, keep));
  assert.ok((await readdir(dest)).includes('README.txt'));
  assert.ok(
    (await readdir(dest)).some((n) => n.endsWith('.partial')),
    'a fresh partial is left alone',
  );

  // list: newest first.
  const listed = await runCli(['backup', 'list', '--json'], { BACKUP_DIR: dest });
  assert.deepEqual(
    (JSON.parse(listed.stdout) as Array<{ name: string }>).map((r) => r.name),
    names.slice(0, keep),
  );

  // A shorter retention from the option (and from the environment).
  const three = await runCli(['backup', 'prune', '--retention-days', '3'], { BACKUP_DIR: dest });
  assert.equal(three.code, 0, three.stderr);
  assert.deepEqual(await archivesIn(dest), names.slice(0, 3));
  const one = await runCli(['backup', 'prune'], { BACKUP_DIR: dest, BACKUP_RETENTION_DAYS: '1' });
  assert.equal(one.code, 0, one.stderr);
  assert.deepEqual(await archivesIn(dest), names.slice(0, 1));
});

test('prune never deletes the newest archive, however old', { timeout: 60_000 }, async (t) => {
  const dest = await sandbox(t);
  const names = await archivesAged(
    dest,
    Array.from({ length: 10 }, (_, i) => figures.backup.retentionDays + 1 + i),
  );
  const r = await runCli(['backup', 'prune', '--json'], { BACKUP_DIR: dest });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { kept: string[]; deleted: string[] };
  assert.deepEqual(out.kept, [names[0]]);
  assert.deepEqual(out.deleted, names.slice(1));
  assert.deepEqual(await archivesIn(dest), [names[0]]);
  // Even with a retention of 0 days.
  const zero = await runCli(['backup', 'prune', '--retention-days', '0'], { BACKUP_DIR: dest });
  assert.equal(zero.code, 0, zero.stderr);
  assert.deepEqual(await archivesIn(dest), [names[0]]);
  // And an empty folder is fine.
  const empty = await sandbox(t);
  const e = await runCli(['backup', 'prune'], { BACKUP_DIR: empty });
  assert.equal(e.code, 0, e.stderr);
  assert.match(e.stdout, /kept 0 archives/);
});

test('prune: the cutoff is exact and archives of the same second are ordered', async (t) => {
  const dest = await sandbox(t);
  const now = new Date(Date.UTC(2026, 10, 26, 2, 0, 30));
  const exactly = new Date(now.getTime() - figures.backup.retentionDays * DAY);
  const names = [
    archiveName(new Date(now.getTime() - 60_000)),
    archiveName(new Date(now.getTime() - 60_000 + 250), { milliseconds: true }),
    archiveName(exactly),
    archiveName(new Date(exactly.getTime() - 1000)),
  ];
  await mkdir(dest, { recursive: true });
  for (const n of names) await writeFile(join(dest, n), 'x');
  const r = await pruneBackups({ dest, now });
  assert.deepEqual(
    r.kept.map((a) => a.name),
    [names[1], names[0], names[2]],
  );
  assert.deepEqual(
    r.deleted.map((a) => a.name),
    [names[3]],
  );
  assert.equal(parseArchiveName('analytics-backup-20261126T020000Z.tar.gz')?.created.toISOString(), '2026-11-26T02:00:00.000Z');
  assert.equal(parseArchiveName('analytics-backup-20261126T020000.123Z-2.tar.gz')?.counter, 2);
  assert.equal(parseArchiveName('analytics-backup-20261326T020000Z.tar.gz'), undefined);
  assert.equal(parseArchiveName('analytics-backup-20261126T020000Z.tar.gz.partial'), undefined);
});
