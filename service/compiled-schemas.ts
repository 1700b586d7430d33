import { Ajv, type ValidateFunction } from 'ajv';
import fastJson from 'fast-json-stringify';
import { validatorCompiler as zodValidatorCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';

// The hot routes' schemas compiled once more, from the same zod schemas (z.toJSONSchema, as the
// OpenAPI document is): Ajv checks a request in a fraction of a microsecond where zod's parse
// builds a copy of it (54 us for a batch of 64 iris rows, 785 us for 64 rows of 64 features), and
// fast-json-stringify writes the answer from the response schema. Only what Ajv accepts takes
// the fast path; anything else is parsed by zod as before, so what is refused, and every error
// message, is zod's. That holds for schemas marked compiled(): their JSON Schema accepts nothing
// zod refuses, and zod's parse gives back what it was given (no transforms, defaults, coercions
// or refinements; at most keys nobody reads are not stripped).

const marked = new WeakSet<z.ZodType>();

/** Marks a schema for the fast paths; see above for what it must be. */
export function compiled<T extends z.ZodType>(schema: T): T {
  marked.add(schema);
  return schema;
}

// No coercion, no defaults, nothing removed: a check, not a transformation. unicode: false makes
// string lengths UTF-16 units, as zod's (and JavaScript's) are, not code points: Ajv still honours
// it, and says it is deprecated, a warning left out here.
const ajv = new Ajv({
  coerceTypes: false,
  useDefaults: false,
  removeAdditional: false,
  allErrors: false,
  unicode: false,
  strict: false,
  logger: {
    log: console.log,
    warn: (...args: unknown[]) => {
      if (!String(args[0]).includes('option unicode')) console.warn(...args);
    },
    error: console.error,
  },
});
const checks = new WeakMap<z.ZodType, ValidateFunction>();

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') => z.toJSONSchema(schema, { target: 'draft-7', io, unrepresentable: 'any' });

/** The compiled check of a marked schema; undefined for any other. */
export function compiledCheck(schema: unknown): ValidateFunction | undefined {
  if (!(schema instanceof z.ZodType) || !marked.has(schema)) return undefined;
  let check = checks.get(schema);
  if (!check) {
    check = ajv.compile(jsonSchema(schema, 'input'));
    checks.set(schema, check);
  }
  return check;
}

type ValidatorCompiler = typeof zodValidatorCompiler;

/** Fastify's validator compiler: Ajv first for marked schemas, zod for the rest and for whatever Ajv refuses. */
export const validatorCompiler: ValidatorCompiler = (route) => {
  const zod = zodValidatorCompiler(route);
  const check = compiledCheck(route.schema);
  if (!check) return zod;
  return (data) => (check(data) ? { value: data } : zod(data));
};

/** Fastify's serializer compiler: fast-json-stringify for marked response schemas, JSON.stringify otherwise. */
export const serializerCompiler = ({ schema }: { schema: unknown }): ((data: unknown) => string) => {
  if (schema instanceof z.ZodType && marked.has(schema)) return fastJson(jsonSchema(schema, 'output') as never) as (data: unknown) => string;
  return (data) => JSON.stringify(data);
};
