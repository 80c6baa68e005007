/**
 * The finding-code registry: every code TaskFlow can report, read from `finding-codes.json` — the
 * same file the Python checker and child runner read inside the sandbox image.
 */
import registry from './finding-codes.json';

export type FindingStage = 'upload' | 'static' | 'dependencies' | 'run' | 'pipeline';
export type FindingCode = keyof typeof registry.codes;

export interface FindingCodeInfo {
  severity: 'error' | 'warning';
  stage: FindingStage;
  summary: string;
}

export const FINDING_CODES = registry.codes as Record<FindingCode, FindingCodeInfo>;

export function isFindingCode(code: unknown): code is FindingCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(FINDING_CODES, code);
}
