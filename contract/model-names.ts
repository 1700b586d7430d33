import { z } from 'zod';

// What a model name and a version may be, once: the REST API, the store, the CLI, the backups and
// the ModelVersion CRD all check them with these rules and say so in these words. Both are used as
// folder names in the store and inside Kubernetes object names and labels, hence DNS-like.

export const MODEL_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const VERSION_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

export const MODEL_NAME_RULE = 'a model name is 1-63 lowercase letters, digits and "-", starting and ending with a letter or digit';
export const VERSION_NAME_RULE = 'a version is 1-63 lowercase letters, digits, "." and "-", starting and ending with a letter or digit (e.g. "1.0.0", "2")';

export const modelNameSchema = z.string().regex(MODEL_NAME, MODEL_NAME_RULE);
export const versionSchema = z.string().regex(VERSION_NAME, VERSION_NAME_RULE);
