/**
 * The line between a database that is away (an ordinary fault: 503 at the API, a retried activity, a
 * wait at start-up) and every other error, and the one way to wait such an outage out.
 */
/** SQLSTATE classes and node errors that mean "the database is not there right now" (retry later). */
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0[1-4])/;
const UNAVAILABLE_NODE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH']);

export function isDatabaseUnavailable(err: unknown): boolean {
  // Duck-typed: socket errors may come from another realm (instanceof Error would miss them).
  if (typeof err !== 'object' || err === null) return false;
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_NODE.has(code))) return true;
  // pg's own words for a lost or never-made connection, and a statement cut by statement_timeout.
  return (
    typeof message === 'string' &&
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|canceling statement due to statement timeout/i.test(
      message,
    )
  );
}

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 2000;

/**
 * Runs `fn` again while the database is away, up to `maxWaitMs`: an activity whose attempts are counted
 * (a validation gives up after VALIDATION_MAX_ATTEMPTS) must not spend them on a restarting database.
 * Other errors, and an aborted `signal` (a cancelled activity), end the wait at once.
 */
export async function untilDatabaseAnswers<T>(
  fn: () => Promise<T>,
  signal?: AbortSignal,
  maxWaitMs = 60_000,
  onWait?: (err: unknown) => void,
): Promise<T> {
  const deadline = Date.now() + maxWaitMs;
  for (let delay = FIRST_DELAY_MS; ; delay = Math.min(2 * delay, MAX_DELAY_MS)) {
    try {
      return await fn();
    } catch (err) {
      if (!isDatabaseUnavailable(err) || signal?.aborted || Date.now() + delay > deadline) throw err;
      onWait?.(err);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
