/**
 * Identifiers that may appear in a path. Every path under TASKS_DIR, QUARANTINE_DIR, staging and
 * DATA_DIR is built from these alone (the rules are domain/names.ts), and the path builders
 * (`layout.ts`) check them again.
 */
import crypto from 'node:crypto';
import { FILE_NAME_RE, PY_KEYWORDS } from '../../domain/names';

export const STAGED_NAME_RE = /^[0-9a-f]{32}\.upload$/;

export function newValidationId(): string {
  return crypto.randomBytes(16).toString('hex');
}

export function newStagedName(): string {
  return `${crypto.randomBytes(16).toString('hex')}.upload`;
}

/** Throws (a bug, not a user error) when an identifier that reached a path builder is malformed. */
export function mustMatch(re: RegExp, value: string, what: string): string {
  if (typeof value !== 'string' || !re.test(value)) throw new Error(`internal: refusing to build a path from an invalid ${what}`);
  if (re === FILE_NAME_RE && PY_KEYWORDS.has(value)) throw new Error(`internal: refusing to build a path from an invalid ${what}`);
  return value;
}
