import semver from 'semver';
import { z } from 'zod';

// What a model name and a version may be, once: the REST API, the store, the CLI, the backups and
// the ModelVersion CRD all check them with these rules and say so in these words. Both are used as
// folder names in the store and inside Kubernetes object names and labels, hence DNS-like.
//
// A version is a semantic version, so "the highest version serves" has one answer whatever order
// objects are created or restored in: MAJOR[.MINOR[.PATCH]][-PRERELEASE], a missing part reading
// as 0 ("2" is 2.0.0), no build metadata ("+" is not allowed in Kubernetes names).

export const MODEL_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

const NUMBER = '(0|[1-9][0-9]*)';
const PRERELEASE_PART = '(0|[1-9][0-9]*|[0-9]*[a-z-][0-9a-z-]*)';
export const VERSION_NAME = new RegExp(String.raw`^${NUMBER}(\.${NUMBER}){0,2}(-${PRERELEASE_PART}(\.${PRERELEASE_PART})*)?$`);
const VERSION_MAX = 63;

export const MODEL_NAME_RULE = 'a model name is 1-63 lowercase letters, digits and "-", starting and ending with a letter or digit';
export const VERSION_NAME_RULE =
  'a version is a semantic version of at most 63 characters: MAJOR[.MINOR[.PATCH]][-PRERELEASE] with numbers without leading zeros and a lowercase pre-release (e.g. "2", "1.4", "1.0.0-rc.1"); "2" reads as 2.0.0';

export const modelNameSchema = z.string().regex(MODEL_NAME, MODEL_NAME_RULE);
export const versionSchema = z.string().max(VERSION_MAX, VERSION_NAME_RULE).regex(VERSION_NAME, VERSION_NAME_RULE);

export const isVersionName = (version: string): boolean => version.length <= VERSION_MAX && VERSION_NAME.test(version);

/** The version as a full semantic version: "2" → 2.0.0, "1.4-rc.1" → 1.4.0-rc.1. */
function full(version: string): string {
  const dash = version.indexOf('-');
  const core = dash < 0 ? version : version.slice(0, dash);
  const parts = core.split('.');
  while (parts.length < 3) parts.push('0');
  return `${parts.join('.')}${dash < 0 ? '' : version.slice(dash)}`;
}

/** Semantic-version order (negative: a is lower); "2" and "2.0.0" are the same version. */
export function compareVersions(a: string, b: string): number {
  return semver.compare(full(a), full(b));
}
