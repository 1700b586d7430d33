import { z } from 'zod';
import { shortHash } from './hashing.ts';

// routing.json, the routing ConfigMap's one key: which version serves each model. The operator
// writes it, the service pods follow it. One schema for both sides.

export const RouteEntry = z.object({
  version: z.string().describe('The version that serves the model'),
  sha256: z.string().optional().describe('sha256 of its ONNX file, as the import computed it'),
  path: z.string().describe('Its ONNX file, relative to the model store root'),
  features: z.array(z.string()).describe('Ordered input feature names'),
});

const CanaryEntry = RouteEntry.extend({
  weight: z.number().int().min(0).max(100).describe("Percent of the model's traffic the canary answers (0 for a shadow)"),
  mode: z.enum(['canary', 'shadow']).describe('canary: it answers its share; shadow: it gets a copy of every request, the stable version answers'),
  maxAbsDifference: z.number().min(0).optional().describe('Shadow, regressors: the largest |shadow - stable| counted as agreeing (default 0)'),
});

export const ModelRoute = RouteEntry.extend({
  canary: CanaryEntry.optional().describe('A version being rolled out against this one (spec.rollout)'),
});

export const Routing = z.object({ models: z.record(z.string(), ModelRoute) });

export type RouteEntry = z.output<typeof RouteEntry>;
export type ModelRoute = z.output<typeof ModelRoute>;
export type Routing = z.output<typeof Routing>;

/** routing.json as stored: stable key order, so equal routing is equal text and equal hash. */
export function routingText(routing: Routing): string {
  return `${JSON.stringify(routing, null, 2)}\n`;
}

export function routingHash(text: string): string {
  return shortHash(text, 16);
}

/** The routing in a text, or undefined when it is missing or not valid routing.json. */
export function parseRouting(text: string | undefined): Routing | undefined {
  if (!text) return undefined;
  try {
    const parsed = Routing.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
