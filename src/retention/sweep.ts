/**
 * The retention sweep over the database: what has outlived its configured lifetime goes, and what is
 * still in use never does. Run periodically by the `retentionSweep` workflow (a Temporal schedule);
 * safe from several hosts at once (one sweep at a time holds the lock, the others skip), and every
 * step is one statement, so a sweep cut short leaves nothing half removed.
 * - Records of finished uploads older than RETENTION_RECORD_DAYS; a name's last upload stays while the
 *   name does, unless it was rejected (then the name goes with it: it has no usable file).
 * - Quarantined bytes of rejected uploads older than RETENTION_QUARANTINE_DAYS (the record stays).
 * - Validated versions that are not current: beyond the newest QUOTA_KEPT_VERSIONS of their name, or
 *   unused for RETENTION_VERSION_DAYS. Never one an unfinished task is pinned to, never one used in the
 *   last GRACE_MS (a task created a moment ago may not be visible yet), never any when the pins are unknown.
 * - Deletion tombstones older than RETENTION_RECORD_DAYS, file bytes nothing refers to (after
 *   GRACE_MS), and rate-limit events past their window.
 */
import type { Queryable } from '../db';
import type { Retention } from '../quotas/definitions';
import type { Storage } from '../storage';

const DAY_MS = 86_400_000;
/** Younger than this, nothing is swept: uploads and task creations in progress finish well within it. */
export const GRACE_MS = 10 * 60_000;
/** Key of the transaction-scoped advisory lock one sweep holds. */
export const SWEEP_LOCK_KEY = 0x73776570; // "swep"

export interface SweepOptions {
  retention: Retention;
  keptVersions: number;
  /** `owner/sha256` of every version an unfinished task is pinned to; undefined when unknown (no version is removed). */
  pinned: ReadonlySet<string> | undefined;
  /** The sweep's "now" (tests move it forward); default: the database's clock. */
  now?: number;
}

export interface SweepReport {
  records: number;
  quarantined: number;
  versions: number;
  blobs: number;
  /** Dependency locks no validation or task names any more. */
  locks: number;
  tombstones: number;
  bytesFreed: number;
  /** Why versions were not looked at, when they were not. */
  versionsSkipped?: string;
  /** Another host's sweep held the lock: this one did nothing. */
  skipped?: string;
}

export const pinKey = (owner: string, sha256: string): string => `${owner}/${sha256}`;

export async function sweep(storage: Storage, opts: SweepOptions): Promise<SweepReport> {
  const report: SweepReport = { records: 0, quarantined: 0, versions: 0, blobs: 0, locks: 0, tombstones: 0, bytesFreed: 0 };
  return storage.db.tx(async (c) => {
    const { rows: lock } = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS ok', [SWEEP_LOCK_KEY]);
    if (!lock[0].ok) return { ...report, skipped: 'another retention sweep is running' };
    const { rows: clock } = await c.query<{ now: Date }>('SELECT now() AS now');
    const now = new Date(opts.now ?? clock[0].now.getTime());
    const before = (ms: number) => new Date(now.getTime() - ms);
    const recordCutoff = before(opts.retention.recordDays * DAY_MS);
    /** Runs a DELETE/UPDATE that RETURNs `bytes` per row; counts the rows and the bytes. */
    const count = async (what: keyof Omit<SweepReport, 'bytesFreed' | 'versionsSkipped' | 'skipped'>, sql: string, args: unknown[]) => {
      const { rows } = await c.query<{ bytes: number | null }>(sql, args);
      report[what] += rows.length;
      report.bytesFreed += rows.reduce((n, r) => n + (r.bytes ?? 0), 0);
    };

    await count('tombstones', 'DELETE FROM task_files WHERE current_validation_id IS NULL AND deleted_at < $1 RETURNING 0 AS bytes', [
      recordCutoff,
    ]);
    // A name whose last upload was rejected and has expired goes with it (nothing usable was left).
    await c.query(
      `DELETE FROM task_files t USING validations v WHERE v.validation_id = t.current_validation_id
         AND v.final->>'status' = 'REJECTED' AND v.finished_at < $1`,
      [recordCutoff],
    );
    await count(
      'records',
      `DELETE FROM validations v WHERE final IS NOT NULL AND finished_at < $1
         AND NOT EXISTS (SELECT 1 FROM task_files t WHERE t.current_validation_id = v.validation_id)
       RETURNING coalesce(pg_column_size(test_payloads), 0) + coalesce(pg_column_size(final), 0) + coalesce(pg_column_size(report), 0) AS bytes`,
      [recordCutoff],
    );
    await count(
      'quarantined',
      `UPDATE validations SET blob_sha256 = NULL WHERE blob_sha256 IS NOT NULL AND final->>'status' = 'REJECTED' AND finished_at < $1
       RETURNING size AS bytes`,
      [before(opts.retention.quarantineDays * DAY_MS)],
    );

    if (opts.pinned) await sweepVersions(c, opts, now, count);
    else report.versionsSkipped = 'the versions unfinished tasks are pinned to are unknown';

    await count(
      'blobs',
      `DELETE FROM blobs b WHERE touched_at < $1
         AND NOT EXISTS (SELECT 1 FROM validations v WHERE v.blob_sha256 = b.sha256)
         AND NOT EXISTS (SELECT 1 FROM versions s WHERE s.sha256 = b.sha256)
       RETURNING 0 AS bytes`,
      [before(GRACE_MS)],
    );
    // A lock is kept in the transaction that names it on a validation, so one named by nothing is one
    // whose validations expired (a task keeps its own). A worker's unpacked layer of it is its cache's.
    await count(
      'locks',
      `DELETE FROM dependency_locks l WHERE NOT EXISTS (SELECT 1 FROM validations v WHERE v.lock_sha256 = l.sha256)
         AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.lock_sha256 = l.sha256)
       RETURNING pg_column_size(lock) AS bytes`,
      [],
    );
    await c.query("DELETE FROM rate_events WHERE at < now() - interval '1 minute'");
    return report;
  });
}

/** Versions that are neither promoted, pinned, recently used, nor among the newest kept of their name. */
async function sweepVersions(
  c: Queryable,
  opts: SweepOptions,
  now: Date,
  count: (what: 'versions', sql: string, args: unknown[]) => Promise<void>,
): Promise<void> {
  // Each name's validated versions, newest first (by their last validation); a version shared by names
  // takes its best place.
  const { rows } = await c.query<{ owner: string; sha256: string; last_used_at: Date; rank: number | null }>(
    `WITH ranked AS (
       SELECT owner, sha256, row_number() OVER (PARTITION BY owner, file_name ORDER BY max(finished_at) DESC) AS rank
       FROM validations WHERE final->>'status' = 'VALIDATED' GROUP BY owner, file_name, sha256)
     SELECT s.owner, s.sha256, s.last_used_at, (SELECT min(r.rank) FROM ranked r WHERE r.owner = s.owner AND r.sha256 = s.sha256) AS rank
     FROM versions s
     WHERE NOT EXISTS (SELECT 1 FROM task_files t WHERE t.owner = s.owner AND t.promoted_sha256 = s.sha256)`,
  );
  const doomed = rows.filter((v) => {
    if (opts.pinned?.has(pinKey(v.owner, v.sha256))) return false;
    const idle = now.getTime() - v.last_used_at.getTime();
    if (idle <= GRACE_MS) return false;
    return idle > opts.retention.versionDays * DAY_MS || v.rank === null || v.rank > opts.keptVersions;
  });
  if (!doomed.length) return;
  await count(
    'versions',
    `DELETE FROM versions s USING unnest($1::text[], $2::text[]) AS d(owner, sha256), blobs b
     WHERE s.owner = d.owner AND s.sha256 = d.sha256 AND b.sha256 = s.sha256
       AND NOT EXISTS (SELECT 1 FROM task_files t WHERE t.owner = s.owner AND t.promoted_sha256 = s.sha256)
     RETURNING octet_length(b.bytes) AS bytes`,
    [doomed.map((v) => v.owner), doomed.map((v) => v.sha256)],
  );
}
