/**
 * The rules for names users choose and identifiers that may appear in a path. Pure: the API, the
 * config, storage's path builders and the workflows all apply the same rules from here.
 */
export const OWNER_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;
export const OWNER_RULE = 'lowercase letters, digits, _ and -, starting with a letter or digit, at most 32 characters';
/** A Python identifier in ASCII, bounded: what `import NAME` could name. */
export const FILE_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
export const FILE_NAME_MAX = 64;
export const VALIDATION_ID_RE = /^[0-9a-f]{32}$/;
export const TASK_ID_RE = /^[0-9a-f-]{36}$/;
export const SHA256_RE = /^[0-9a-f]{64}$/;

export const PY_KEYWORDS: ReadonlySet<string> = new Set([
  'False',
  'None',
  'True',
  'and',
  'as',
  'assert',
  'async',
  'await',
  'break',
  'class',
  'continue',
  'def',
  'del',
  'elif',
  'else',
  'except',
  'finally',
  'for',
  'from',
  'global',
  'if',
  'import',
  'in',
  'is',
  'lambda',
  'nonlocal',
  'not',
  'or',
  'pass',
  'raise',
  'return',
  'try',
  'while',
  'with',
  'yield',
]);

/** Why a file name was refused, or undefined when it is fine. Accepts `NAME` or `NAME.py`. */
export function fileNameProblem(raw: string): string | undefined {
  const name = raw.endsWith('.py') ? raw.slice(0, -3) : raw;
  if (name.length === 0) return 'file_name is empty';
  if (name.length > FILE_NAME_MAX) return `file_name is longer than ${FILE_NAME_MAX} characters`;
  if (!FILE_NAME_RE.test(name)) {
    return 'file_name must be a Python identifier (ASCII letters, digits and _, not starting with a digit), optionally ending in .py';
  }
  if (PY_KEYWORDS.has(name)) return 'file_name must not be a Python keyword';
  return undefined;
}

/** `NAME.py` → `NAME`; call only after `fileNameProblem` returned undefined. */
export function normalizeFileName(raw: string): string {
  return raw.endsWith('.py') ? raw.slice(0, -3) : raw;
}
