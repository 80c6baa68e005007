/**
 * Admission by quota: an upload or a task is let in only when its owner is within every quota, and
 * the check and the write that uses it up run one at a time per owner, so two concurrent requests
 * cannot both take the last place. A refusal is a QuotaExceededError (429) thrown before anything
 * is written.
 */
import { QuotaExceededError } from '../errors';
import type { Queryable } from '../db';
import { isLiveName, ownerUsage } from '../storage/usage';
import { QUOTA_DEFINITIONS, type QuotaName, type Quotas } from './definitions';
import { rateWaitMs, recordRateEvent } from './rate-window';
import type { TaskPriority } from '../../domain/task';

const MIB = 1024 * 1024;

function refuse(name: QuotaName, max: number, message: string, retryAfterMs?: number): never {
  const d = QUOTA_DEFINITIONS[name];
  const retryAfterS = retryAfterMs !== undefined ? Math.max(1, Math.ceil(retryAfterMs / 1000)) : 'retryAfterS' in d ? d.retryAfterS : 60;
  throw new QuotaExceededError(d.limit, max, retryAfterS, message);
}

/**
 * Admits an upload of `size` bytes as `fileName`, or throws a QuotaExceededError. Runs inside the
 * upload's transaction, after `lockOwner`: the decision and the write that uses the place up commit
 * together, so concurrent uploads through any number of API replicas cannot overshoot.
 */
export async function admitUpload(c: Queryable, q: Quotas, owner: string, fileName: string, size: number): Promise<void> {
  const wait = await rateWaitMs(c, owner, 'upload', q.uploadsPerMinute);
  if (wait > 0) refuse('uploadsPerMinute', q.uploadsPerMinute, `at most ${q.uploadsPerMinute} uploads per minute`, wait);
  const usage = await ownerUsage(c, owner);
  if (usage.validationsInFlight >= q.validationsInFlight) {
    refuse(
      'validationsInFlight',
      q.validationsInFlight,
      `at most ${q.validationsInFlight} uploads may be validating at once; wait for one to finish`,
    );
  }
  if (usage.liveNames >= q.fileNames && !(await isLiveName(c, owner, fileName))) {
    refuse('fileNames', q.fileNames, `at most ${q.fileNames} task file names; delete one (DELETE /tasks/delete_file) to add another`);
  }
  if (usage.storedBytes + size > q.storedMiB * MIB) {
    refuse(
      'storedMiB',
      q.storedMiB * MIB,
      `at most ${q.storedMiB} MiB of stored files (${usage.storedBytes} bytes in use); delete files or wait for the retention sweep`,
    );
  }
  await recordRateEvent(c, owner, 'upload');
}

/**
 * The priority a task is queued with: `high` only while the owner has fewer than
 * QUOTA_HIGH_TASKS_IN_FLIGHT unfinished `high` tasks, else `low`. Temporal orders priority keys before
 * fairness keys, so without this bound one owner's `high` flood would run before every other owner's
 * `low` task. Runs under the owner's lock, like the quotas.
 */
export async function admittedPriority(c: Queryable, q: Quotas, owner: string, requested: TaskPriority): Promise<TaskPriority> {
  if (requested !== 'high') return requested;
  const { rows } = await c.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM tasks WHERE owner = $1 AND finished_at IS NULL AND priority = 'high'",
    [owner],
  );
  return rows[0].n < q.highTasksInFlight ? 'high' : 'low';
}

/** Below this age an unfinished task is not asked about: its workflow may not be visible yet. */
const RECONCILE_AFTER_MS = 5000;

/**
 * Admits a task with a `payloadBytes` payload, or throws a QuotaExceededError. Runs inside the task's
 * transaction, after `lockOwner`. Unfinished tasks are counted from their rows; only at the limit is
 * each old enough one confirmed with `stillRunning` (a workflow that ended without saying so, e.g.
 * terminated by an operator, would otherwise hold its place for good) and marked finished if not.
 */
export async function admitTask(
  c: Queryable,
  q: Quotas,
  owner: string,
  payloadBytes: number,
  stillRunning: (taskId: string) => Promise<boolean>,
): Promise<void> {
  const wait = await rateWaitMs(c, owner, 'task', q.tasksPerMinute);
  if (wait > 0) refuse('tasksPerMinute', q.tasksPerMinute, `at most ${q.tasksPerMinute} tasks per minute`, wait);
  const usage = await ownerUsage(c, owner);
  if (usage.tasksInFlight >= q.tasksInFlight) {
    const { rows } = await c.query<{ task_id: string }>(
      `SELECT task_id FROM tasks WHERE owner = $1 AND finished_at IS NULL AND created_at < now() - make_interval(secs => $2)`,
      [owner, RECONCILE_AFTER_MS / 1000],
    );
    let ended = 0;
    for (const { task_id } of rows) {
      if (await stillRunning(task_id)) continue;
      await c.query(`UPDATE tasks SET finished_at = now(), status = 'ENDED' WHERE task_id = $1 AND finished_at IS NULL`, [task_id]);
      ended++;
    }
    if (usage.tasksInFlight - ended >= q.tasksInFlight) {
      refuse('tasksInFlight', q.tasksInFlight, `at most ${q.tasksInFlight} unfinished tasks; wait for some to finish or cancel them`);
    }
  }
  if (usage.storedBytes + payloadBytes > q.storedMiB * MIB) {
    refuse(
      'storedMiB',
      q.storedMiB * MIB,
      `at most ${q.storedMiB} MiB stored (${usage.storedBytes} bytes in use, task payloads and results included); delete files or wait for the retention sweep`,
    );
  }
  await recordRateEvent(c, owner, 'task');
}
