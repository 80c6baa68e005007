/**
 * Tasks' rows in the database: what the task quotas count across every API replica. A row is written
 * in the same transaction that admits the task and starts its workflow (a refused or failed start
 * leaves none), and finished by the workflow's last step with the size of its result.
 */
import type { Database } from '../db';
import { admittedPriority, admitTask } from '../quotas/admission';
import type { TaskPriority } from '../../domain/task';
import type { Quotas } from '../quotas/definitions';
import { lockOwner } from './records';

export interface NewTask {
  taskId: string;
  owner: string;
  title: string;
  sha256: string;
  lockSha256?: string;
  payloadBytes: number;
  /** As requested; admission may lower `high` to `low` (see admittedPriority). */
  priority: TaskPriority;
}

export class TaskRecords {
  constructor(private readonly db: Database) {}

  /**
   * Admits the task under its owner's lock (429 beyond a quota), decides its priority, writes its row, and
   * runs `start` (the workflow start, with that priority) before committing: the row exists exactly when
   * the start was accepted.
   */
  async create<T>(
    task: NewTask,
    quotas: Quotas,
    stillRunning: (taskId: string) => Promise<boolean>,
    start: (priority: TaskPriority) => Promise<T>,
  ): Promise<T> {
    return this.db.tx(async (c) => {
      await lockOwner(c, task.owner);
      await admitTask(c, quotas, task.owner, task.payloadBytes, stillRunning);
      const priority = await admittedPriority(c, quotas, task.owner, task.priority);
      await c.query(
        'INSERT INTO tasks (task_id, owner, file_name, sha256, payload_bytes, priority, lock_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7)',
        [task.taskId, task.owner, task.title, task.sha256, task.payloadBytes, priority, task.lockSha256 ?? null],
      );
      return start(priority);
    });
  }

  /** The task's end (once; a replayed or retried call changes nothing). */
  async finished(taskId: string, status: string, resultBytes: number): Promise<void> {
    await this.db.pool.query(
      'UPDATE tasks SET finished_at = now(), status = $2, result_bytes = $3 WHERE task_id = $1 AND finished_at IS NULL',
      [taskId, status, resultBytes],
    );
  }
}
