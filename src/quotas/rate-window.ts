/**
 * Sliding 60-second windows of events per owner ("uploads per minute", "tasks per minute"), kept in
 * the database so that every API replica counts the same events. Called inside the admission
 * transaction, under the owner's lock, with the database's clock (one clock for every host).
 */
import type { Queryable } from '../db';

export const WINDOW_MS = 60_000;
export type RateKind = 'upload' | 'task';

/** Milliseconds until `owner` may act again (0: now). Forgets events older than the window. */
export async function rateWaitMs(c: Queryable, owner: string, kind: RateKind, max: number): Promise<number> {
  await c.query(`DELETE FROM rate_events WHERE owner = $1 AND kind = $2 AND at <= now() - make_interval(secs => $3)`, [
    owner,
    kind,
    WINDOW_MS / 1000,
  ]);
  // The max-th newest event: until it leaves the window, one more would make max + 1.
  const { rows } = await c.query<{ wait_ms: number }>(
    `SELECT greatest(0, extract(epoch FROM at + make_interval(secs => $3) - now()) * 1000)::float8 AS wait_ms
     FROM rate_events WHERE owner = $1 AND kind = $2 ORDER BY at DESC OFFSET $4 LIMIT 1`,
    [owner, kind, WINDOW_MS / 1000, max - 1],
  );
  return rows[0] ? Math.max(1, rows[0].wait_ms) : 0;
}

export async function recordRateEvent(c: Queryable, owner: string, kind: RateKind): Promise<void> {
  await c.query('INSERT INTO rate_events (owner, kind) VALUES ($1, $2)', [owner, kind]);
}
