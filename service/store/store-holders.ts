import { hostname } from 'node:os';
import { mkdir, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HOLDERS_DIR } from '../../contract/store-layout.ts';

// A running service holds its model store: <store>/.holders/<host>-<pid>.json, touched every
// TOUCH_MS and removed when it stops. `backup restore` refuses while a holder is fresh, because a
// running service keeps serving the sessions it loaded from the bytes a restore replaces. A
// service killed without its clean-up leaves a file that goes stale after FRESH_MS.

const TOUCH_MS = 10_000;
export const HOLDER_FRESH_MS = 30_000;

export interface StoreHolder {
  /** `<host>-<pid>`: the pod's name in Kubernetes. */
  name: string;
  /** Since its last touch. */
  ageMs: number;
}

/** Claims the store for this process until release() (called on the service's close). */
export async function holdStore(root: string): Promise<{ release(): Promise<void> }> {
  const dir = join(root, HOLDERS_DIR);
  const file = join(dir, `${hostname()}-${process.pid}.json`);
  const write = () => writeFile(file, `${JSON.stringify({ host: hostname(), pid: process.pid, since: new Date().toISOString() })}\n`);
  await mkdir(dir, { recursive: true });
  await write();
  const timer = setInterval(() => {
    const now = new Date();
    // Recreated if something removed it (a restore of the whole store folder).
    utimes(file, now, now).catch(() => write().catch(() => undefined));
  }, TOUCH_MS);
  timer.unref();
  return {
    async release() {
      clearInterval(timer);
      await rm(file, { force: true });
    },
  };
}

/** The services holding the store now (touched within HOLDER_FRESH_MS). */
export async function storeHolders(root: string, now = Date.now()): Promise<StoreHolder[]> {
  const dir = join(root, HOLDERS_DIR);
  const holders: StoreHolder[] = [];
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    if (!entry.endsWith('.json')) continue;
    const info = await stat(join(dir, entry)).catch(() => undefined);
    if (!info) continue;
    const ageMs = Math.max(0, now - info.mtimeMs);
    if (ageMs <= HOLDER_FRESH_MS) holders.push({ name: entry.slice(0, -'.json'.length), ageMs });
  }
  return holders.sort((a, b) => a.name.localeCompare(b.name));
}
