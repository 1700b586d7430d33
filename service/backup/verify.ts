import { checkArchiveModel, verifyArchive, type Manifest } from './archive.ts';
import type { ArchiveScope } from './list.ts';

// `backup verify`: every entry's checksum against the manifest, and the archive's scope.

export interface VerifyResult {
  path: string;
  created: string;
  files: number;
  bytes: number;
  sizeBytes: number;
  sources: Manifest['sources'];
  /** The model of a per-model archive. */
  model?: string;
}

/**
 * Verifies an archive. With `options.model`, the archive must also be one of that model (its
 * manifest says so): anything else is a USAGE error, after the archive verified.
 */
export async function verifyBackup(path: string, options: ArchiveScope = {}): Promise<VerifyResult> {
  const { manifest, archiveBytes } = await verifyArchive(path);
  checkArchiveModel(path, manifest, options.model);
  return {
    path,
    created: manifest.created,
    files: manifest.totals.files,
    bytes: manifest.totals.bytes,
    sizeBytes: archiveBytes,
    sources: manifest.sources,
    ...(manifest.model !== undefined ? { model: manifest.model } : {}),
  };
}
