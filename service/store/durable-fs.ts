import { open, stat } from 'node:fs/promises';

// Writes that survive a crash (the model store's and the backups'): data fsynced before it is
// renamed into place, and the folder fsynced after, so the new name is on disk too.

export const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

export async function writeFileDurably(path: string, data: Uint8Array | string): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsyncs a folder, so renames and new names in it survive a crash. */
export async function syncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } catch (err) {
    // Some file systems (and Windows) cannot fsync a directory; the data itself was synced.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR') throw err;
  } finally {
    await fh.close();
  }
}
