/**
 * Bounded JSON at the edge: payloads nested deeper than `MAX_JSON_DEPTH` are refused before they
 * reach a record, Temporal or the sandbox (V8's JSON.stringify overflows its stack past ~10 000
 * levels, Python's json past ~1 000). Depth counts containers: `{}` is 1, `{"a": [1]}` is 2.
 */
import { BadRequestError } from '../errors';

/** Whether `value` nests objects/arrays more than `limit` deep. Iterative, so any depth is safe to ask about. */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  // Two flat stacks instead of [value, depth] pairs: no allocation per node.
  const values: unknown[] = [value];
  const depths: number[] = [1];
  while (values.length) {
    const v = values.pop();
    const depth = depths.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > limit) return true;
    if (Array.isArray(v)) {
      for (const child of v) {
        if (child !== null && typeof child === 'object') {
          values.push(child);
          depths.push(depth + 1);
        }
      }
    } else {
      for (const key in v) {
        if (!Object.hasOwn(v, key)) continue;
        const child = (v as Record<string, unknown>)[key];
        if (child !== null && typeof child === 'object') {
          values.push(child);
          depths.push(depth + 1);
        }
      }
    }
  }
  return false;
}

/** 400 `payload_too_deep` naming the field when `value` nests deeper than `limit`. */
export function assertDepth(value: unknown, limit: number, field: string): void {
  if (nestsDeeperThan(value, limit)) {
    throw new BadRequestError(`${field} nests objects/arrays more than ${limit} levels deep`, 'payload_too_deep', { max_depth: limit });
  }
}
