/**
 * The seam between the API and task execution (issue 4). `POST /tasks/` checks the file
 * (404 / 412 in `ValidationService.resolveForTask`), then hands a request pinned to the validated
 * sha256 to a `TaskService`. Until task execution is wired in, the app uses `tasksNotEnabled`,
 * which answers 501 after those checks passed.
 */
import { NotImplementedError } from './errors';
import type { TaskPriority } from '../workflows/task-contract';

export interface TaskCreateRequest {
  owner: string;
  /** The task file's name (validated identifier, no `.py`). */
  title: string;
  /** The validated version the task must run (its bytes: `storage.files.loadVersion(owner, title, sha256)`). */
  sha256: string;
  validationId: string;
  payload: Record<string, unknown>;
  priority: TaskPriority;
  /** ISO time (from `scheduled_at`: an ISO string or unix seconds); absent means now. */
  scheduledAt?: string;
}

/** What `POST /tasks/` answers with `201`. */
export interface CreatedTask {
  task_id: string;
  status: string;
  title: string;
  priority: TaskPriority;
  [extra: string]: unknown;
}

export interface TaskService {
  create(req: TaskCreateRequest): Promise<CreatedTask>;
}

export const tasksNotEnabled: TaskService = {
  async create() {
    throw new NotImplementedError('task execution is not enabled in this build', 'tasks_not_enabled');
  },
};
