/**
 * How resolving and unpacking end when they do not succeed. A `DependencyRejected` is the user's file's
 * doing (its requirements): a finding, never retried. `PackageIndexUnavailable` is infrastructure (the
 * index refused the connection, did not answer, or answered 5xx): thrown as is, so Temporal retries it.
 */
export type DependencyFindingCode =
  'dependency_unresolvable' | 'dependency_no_wheel' | 'dependency_too_large' | 'dependency_hash_mismatch' | 'dependency_quota_exceeded';

export class DependencyRejected extends Error {
  constructor(
    readonly code: DependencyFindingCode,
    message: string,
  ) {
    super(message);
    this.name = 'DependencyRejected';
  }
}

export class PackageIndexUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PackageIndexUnavailable';
  }
}

/** uv's own failure, not one it attributes to the index or the requirements (a bug, a full disk): retried. */
export class DependencyToolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DependencyToolError';
  }
}

/** The index URL may carry credentials (a private mirror): never show them in a finding or a log. */
export const redact = (s: string): string => s.replace(/\/\/[^/@\s]+@/g, '//***@');

/** uv's `error:`, `cause:` and `hint:` lines (progress chatter dropped), credentials redacted, clipped. */
export function uvMessage(stderr: string, max = 1500): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trimEnd())
    .filter(
      (l) =>
        /^\s*(error|cause|caused by|hint|╰─▶|\s+\S)/i.test(l) && !/^\s*(Using|Resolved|Prepared|Installed|Downloading|Audited)\b/.test(l),
    );
  const text = redact((lines.length ? lines : stderr.split('\n').slice(-8)).join('\n').trim());
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

const NETWORK =
  /Request failed after|Failed to fetch|error sending request|tcp connect error|dns error|failed to lookup address|Connection refused|Connection reset|timed out|server error \(5\d\d|\b5\d\d (Internal Server Error|Bad Gateway|Service Unavailable|Gateway Timeout)|network unreachable|No route to host/i;
const NO_WHEEL =
  /no usable wheels|no wheels with a matching|no wheels are available|Wheels are required|building from source is disabled|only has source distributions|source distributions are disabled|--no-build/i;
const UNRESOLVABLE =
  /No solution found|not found in the package registry|unsatisfiable|Failed to parse|No matching distribution|does not match any|not a valid/i;

/** What a failed uv run means, from its stderr (uv has no machine-readable errors). */
export function classifyUvFailure(stderr: string): DependencyRejected | PackageIndexUnavailable | DependencyToolError {
  const message = uvMessage(stderr);
  if (/hash mismatch/i.test(stderr)) return new DependencyRejected('dependency_hash_mismatch', message);
  // The requirements' fault only once the index answered: a resolution that could not reach it is retried.
  if (NETWORK.test(stderr)) return new PackageIndexUnavailable(`the package index is unavailable: ${message}`);
  if (NO_WHEEL.test(stderr)) return new DependencyRejected('dependency_no_wheel', message);
  if (UNRESOLVABLE.test(stderr)) return new DependencyRejected('dependency_unresolvable', message);
  return new DependencyToolError(`uv failed: ${message}`);
}
