/**
 * Identifiers that may appear in a path (the worker's version cache) or a row key. The rules are
 * domain/names.ts; path builders check them again.
 */
import crypto from 'node:crypto';
import { FILE_NAME_RE, PY_KEYWORDS } from '../../domain/names';

export function newValidationId(): string {
  return crypto.randomBytes(16).toString('hex');
}

/** Throws (a bug, not a user error) when an identifier that reached a path builder is malformed. */
export function mustMatch(re: RegExp, value: string, what: string): string {
  if (typeof value !== 'string' || !re.test(value)) throw new Error(`internal: refusing to build a path from an invalid ${what}`);
  if (re === FILE_NAME_RE && PY_KEYWORDS.has(value)) throw new Error(`internal: refusing to build a path from an invalid ${what}`);
  return value;
}
