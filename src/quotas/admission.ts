/**
 * Admission by quota: an upload or a task is let in only when its owner is within every quota, and
 * the check and the write that uses it up run one at a time per owner, so two concurrent requests
 * cannot both take the last place. A refusal is a QuotaExceededError (429) thrown before anything
 * is written.
 */
import { QuotaExceededError } from '../errors';
import type { UsageReader } from '../storage';
import { QUOTA_DEFINITIONS, type QuotaName, type Quotas } from './definitions';
import { KeyedMutex } from '../keyed-mutex';
import { RateWindow } from './rate-window';

const MIB = 1024 * 1024;

function refuse(name: QuotaName, max: number, message: string, retryAfterMs?: number): never {
  const d = QUOTA_DEFINITIONS[name];
  const retryAfterS = retryAfterMs !== undefined ? Math.max(1, Math.ceil(retryAfterMs / 1000)) : 'retryAfterS' in d ? d.retryAfterS : 60;
  throw new QuotaExceededError(d.limit, max, retryAfterS, message);
}

export class UploadQuotas {
  private readonly lock = new KeyedMutex();
  private readonly perMinute: RateWindow;

  constructor(
    private readonly quotas: Quotas,
    private readonly usage: UsageReader,
  ) {
    this.perMinute = new RateWindow(quotas.uploadsPerMinute);
  }

  /** Runs `accept` (which stages and records the upload) if `owner` may upload `size` bytes as `fileName`. */
  async admit<T>(owner: string, fileName: string, size: number, accept: () => Promise<T>): Promise<T> {
    return this.lock.run(owner, async () => {
      const q = this.quotas;
      const wait = this.perMinute.waitMs(owner);
      if (wait > 0) refuse('uploadsPerMinute', q.uploadsPerMinute, `at most ${q.uploadsPerMinute} uploads per minute`, wait);
      const usage = await this.usage.of(owner);
      if (usage.validationsInFlight >= q.validationsInFlight) {
        refuse(
          'validationsInFlight',
          q.validationsInFlight,
          `at most ${q.validationsInFlight} uploads may be validating at once; wait for one to finish`,
        );
      }
      const names = await this.usage.liveNames(owner);
      if (!names.has(fileName) && names.size >= q.fileNames) {
        refuse('fileNames', q.fileNames, `at most ${q.fileNames} task file names; delete one (DELETE /tasks/delete_file) to add another`);
      }
      if (usage.storedBytes + size > q.storedMiB * MIB) {
        refuse(
          'storedMiB',
          q.storedMiB * MIB,
          `at most ${q.storedMiB} MiB of stored files (${usage.storedBytes} bytes in use); delete files or wait for the retention sweep`,
        );
      }
      const accepted = await accept();
      this.perMinute.record(owner);
      return accepted;
    });
  }
}

/** Recently created tasks the visibility store may not show yet (it lags behind the start by a little). */
const VISIBILITY_LAG_MS = 5000;

export class TaskQuotas {
  private readonly lock = new KeyedMutex();
  private readonly perMinute: RateWindow;
  private readonly recent = new Map<string, { taskId: string; at: number }[]>();

  /**
   * `countUnfinished(owner)`: how many of the owner's tasks are unfinished (Temporal visibility, one count);
   * `unfinished(owner, max)`: ids of up to `max` of them;
   * `isUnfinished(taskId)`: the task's own answer, asked for the few just created that visibility may not show yet.
   */
  constructor(
    private readonly quotas: Quotas,
    private readonly countUnfinished: (owner: string) => Promise<number>,
    private readonly unfinished: (owner: string, max: number) => Promise<string[]>,
    private readonly isUnfinished: (taskId: string) => Promise<boolean>,
  ) {
    this.perMinute = new RateWindow(quotas.tasksPerMinute);
  }

  /** Runs `create` if `owner` may create a task now. */
  async admit<T extends { task_id: string }>(owner: string, create: () => Promise<T>): Promise<T> {
    return this.lock.run(owner, async () => {
      const q = this.quotas;
      const wait = this.perMinute.waitMs(owner);
      if (wait > 0) refuse('tasksPerMinute', q.tasksPerMinute, `at most ${q.tasksPerMinute} tasks per minute`, wait);
      const now = Date.now();
      const recent = (this.recent.get(owner) ?? []).filter((r) => r.at > now - VISIBILITY_LAG_MS);
      // An upper bound first (visibility's count, plus every task created here lately as if visibility
      // missed it): below the limit, nothing more to ask. Only near the limit are the ids listed and the
      // recent tasks asked one by one, which would otherwise cost a call per recent task per request.
      if (
        (await this.countUnfinished(owner)) + recent.length >= q.tasksInFlight &&
        (await this.exactCount(owner, recent)) >= q.tasksInFlight
      ) {
        refuse('tasksInFlight', q.tasksInFlight, `at most ${q.tasksInFlight} unfinished tasks; wait for some to finish or cancel them`);
      }
      const created = await create();
      this.perMinute.record(owner);
      recent.push({ taskId: created.task_id, at: Date.now() });
      this.recent.set(owner, recent);
      return created;
    });
  }

  private async exactCount(owner: string, recent: { taskId: string }[]): Promise<number> {
    const max = this.quotas.tasksInFlight;
    const seen = new Set(await this.unfinished(owner, max));
    let count = seen.size;
    for (const r of recent) if (!seen.has(r.taskId) && count < max && (await this.isUnfinished(r.taskId))) count++;
    return count;
  }
}
