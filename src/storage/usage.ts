/**
 * What an owner has, for the quotas, read from the database at the moment of the decision (inside the
 * admission transaction, under the owner's lock): uploads still validating, bytes kept, live names.
 */
import type { Queryable } from '../db';

export interface OwnerUsage {
  /** Uploads not yet VALIDATED or REJECTED. */
  validationsInFlight: number;
  /**
   * Everything kept on the owner's behalf: uploads being validated and quarantined (their bytes),
   * validated versions, the records themselves (test payloads, findings, run reports), and the payloads
   * and results of the owner's tasks (kept in Temporal's history).
   */
  storedBytes: number;
  /** Tasks not yet finished: scheduled, queued or running. */
  tasksInFlight: number;
  /** Names whose last upload is live (not deleted): what QUOTA_FILE_NAMES counts. */
  liveNames: number;
  /** Unpacked bytes of the owner's dependency layers, each lock once: what QUOTA_LAYER_MIB counts. */
  layerBytes: number;
}

/**
 * The locks an owner holds: those of its uploads being validated and of its validated uploads (the
 * versions its tasks run with), each distinct lock once, whatever number of versions share it.
 */
const LAYER_BYTES = `(SELECT coalesce(sum(l.unpacked_bytes), 0) FROM dependency_locks l WHERE l.sha256 <> coalesce($2, '') AND l.sha256 IN (
    SELECT lock_sha256 FROM validations WHERE owner = $1 AND lock_sha256 IS NOT NULL
      AND (final IS NULL OR final->>'status' = 'VALIDATED')))`;

/** What QUOTA_LAYER_MIB counts for `owner`, `exceptLock` left out (the lock being decided on). */
export async function ownerLayerBytes(c: Queryable, owner: string, exceptLock?: string): Promise<number> {
  const { rows } = await c.query<{ n: string }>(`SELECT ${LAYER_BYTES} AS n`, [owner, exceptLock ?? null]);
  return Number(rows[0].n);
}

export async function ownerUsage(c: Queryable, owner: string): Promise<OwnerUsage> {
  const { rows } = await c.query<OwnerUsage>(
    `SELECT
       (SELECT count(*) FROM validations WHERE owner = $1 AND final IS NULL) AS "validationsInFlight",
       (SELECT coalesce(sum(CASE WHEN blob_sha256 IS NOT NULL THEN size ELSE 0 END
                            + coalesce(pg_column_size(test_payloads), 0) + coalesce(pg_column_size(final), 0)
                            + coalesce(pg_column_size(report), 0)), 0) FROM validations WHERE owner = $1)
       + (SELECT coalesce(sum(octet_length(b.bytes)), 0) FROM versions v JOIN blobs b USING (sha256) WHERE v.owner = $1)
       + (SELECT coalesce(sum(payload_bytes + coalesce(result_bytes, 0)), 0) FROM tasks WHERE owner = $1) AS "storedBytes",
       (SELECT count(*) FROM tasks WHERE owner = $1 AND finished_at IS NULL) AS "tasksInFlight",
       (SELECT count(*) FROM task_files WHERE owner = $1 AND current_validation_id IS NOT NULL) AS "liveNames",
       ${LAYER_BYTES} AS "layerBytes"`,
    [owner, null],
  );
  return { ...rows[0], layerBytes: Number(rows[0].layerBytes) };
}

/** Whether `name` is one of the owner's live names already (a new upload of it takes no new name). */
export async function isLiveName(c: Queryable, owner: string, name: string): Promise<boolean> {
  const { rowCount } = await c.query('SELECT 1 FROM task_files WHERE owner = $1 AND file_name = $2 AND current_validation_id IS NOT NULL', [
    owner,
    name,
  ]);
  return (rowCount ?? 0) > 0;
}
