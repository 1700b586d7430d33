// Every failure of a backup command is a BackupError with a stable code and a one-line message
// that says what is wrong and what to do; the CLI prints the message and exits non-zero.

export type BackupErrorCode =
  | 'USAGE' // bad arguments or configuration
  | 'DESTINATION' // the backup folder is missing, not a folder or not writable
  | 'NO_SPACE' // ENOSPC / EDQUOT while writing
  | 'SOURCE' // the model store or the Redis folder cannot be read
  | 'SOURCE_CHANGED' // a file changed while it was being archived (after the retries)
  | 'NOT_FOUND' // no such archive / no archives
  | 'CORRUPT' // the archive cannot be read (gzip/tar damage, bad manifest)
  | 'CHECKSUM' // an entry's bytes do not match the manifest
  | 'UNSAFE' // an entry restore refuses: absolute path, "..", links, devices, outside the layout
  | 'RESTORE' // the swap into the live folders failed (nothing was changed)
  | 'STORE_IN_USE' // a running service holds the model store (restore refuses)
  | 'INTERRUPTED' // stopped by SIGINT/SIGTERM; partial output removed
  | 'IO'; // any other file-system failure

export class BackupError extends Error {
  readonly code: BackupErrorCode;

  constructor(code: BackupErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackupError';
    this.code = code;
  }
}

/** The errno code of a Node file-system error, if it is one. */
export function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Turns a file-system error met while writing into `dest` into a BackupError a person can act on. */
export function destinationError(err: unknown, dest: string, what = 'the backup folder'): BackupError {
  if (err instanceof BackupError) return err;
  const code = errnoCode(err);
  switch (code) {
    case 'ENOENT':
      return new BackupError('DESTINATION', `${what} ${dest} does not exist; create it or pass another --dest (env BACKUP_DIR)`, { cause: err });
    case 'ENOTDIR':
      return new BackupError('DESTINATION', `${what} ${dest} is not a folder`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new BackupError('DESTINATION', `${what} ${dest} is not writable (${code}); fix its permissions or pass another --dest`, { cause: err });
    case 'EROFS':
      return new BackupError('DESTINATION', `${what} ${dest} is on a read-only file system (EROFS)`, { cause: err });
    case 'ENOSPC':
    case 'EDQUOT':
      return new BackupError(
        'NO_SPACE',
        `no space left in ${what} ${dest} (${code}); the unfinished archive was removed; free space, prune old archives or pass another --dest`,
        { cause: err },
      );
    default:
      return new BackupError('IO', `writing to ${what} ${dest} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
}

/** A one-line description of any error, for stderr. */
export function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s*\n\s*/g, '; ');
}
