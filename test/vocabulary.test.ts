/**
 * The shared vocabularies stay one: every finding code either language reports is in the registry
 * (domain/finding-codes.json), and the workflow type names the domain uses are the workflows' own.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FINDING_CODES, isFindingCode } from '../domain/findings';
import { TASK_WORKFLOW } from '../domain/task';
import { VALIDATION_WORKFLOW } from '../domain/validation';
import * as taskWorkflows from '../workflows/task';
import * as validationWorkflows from '../workflows/validation';

const ROOT = path.resolve(__dirname, '..');
const read = (rel: string) => fs.readFileSync(path.join(ROOT, rel), 'utf8');

/** Codes the Python side emits: add("code", ...), contract_error("code", ...), error_of(exc, "code"), (FORBIDDEN_MODULES, "code"), "code": "code". */
function pythonCodes(source: string): string[] {
  const patterns = [
    /\b(?:add|contract_error)\(\s*"([a-z_]+)"/g,
    /\berror_of\(\w+, "([a-z_]+)"\)/g,
    /\([A-Z_]+_(?:MODULES|REFS), "([a-z_]+)"\)/g,
    /"code": "([a-z_]+)"/g,
  ];
  return patterns.flatMap((re) => [...source.matchAll(re)].map((m) => m[1]));
}

test.each(['sandbox/image/checker.py', 'sandbox/image/child.py', 'sandbox/image/agent.py'])(
  'every finding code %s emits is registered',
  (file) => {
    const codes = pythonCodes(read(file));
    if (file.endsWith('checker.py')) expect(codes.length).toBeGreaterThan(10);
    expect(codes.filter((c) => !isFindingCode(c))).toEqual([]);
  },
);

test('the checker and the child runner agree on the handler contract codes', () => {
  const checker = new Set(pythonCodes(read('sandbox/image/checker.py')));
  const child = pythonCodes(read('sandbox/image/child.py')).filter((c) => c.startsWith('handler_'));
  expect(child.length).toBeGreaterThanOrEqual(3);
  for (const c of child) expect(checker).toContain(c);
});

test('every registered code has a severity, a stage and a summary', () => {
  for (const [code, info] of Object.entries(FINDING_CODES)) {
    expect(code).toMatch(/^[a-z][a-z0-9_]*$/);
    expect(['error', 'warning']).toContain(info.severity);
    expect(['upload', 'static', 'dependencies', 'run', 'pipeline']).toContain(info.stage);
    expect(info.summary.length).toBeGreaterThan(5);
  }
});

test('the workflow type names in domain/ are the workflows the workers register', () => {
  expect(typeof (validationWorkflows as Record<string, unknown>)[VALIDATION_WORKFLOW]).toBe('function');
  expect(typeof (taskWorkflows as Record<string, unknown>)[TASK_WORKFLOW]).toBe('function');
});
