/**
 * The seam between the API and task execution. `POST /tasks/` checks the file (404 / 412 in
 * `ValidationService.resolveForTask`), then hands a request pinned to the validated sha256 to a
 * `TaskService` (the Temporal one: src/tasks/temporal-task-service.ts). A process without task
 * execution (TASKFLOW_ROLES) uses `tasksNotEnabled`, which answers 501.
 */
import { NotImplementedError } from '../errors';
import type { TaskPriority, TaskState, TaskStatus } from '../../domain/task';
import type { WaitRequest } from '../long-poll';

export interface TaskCreateRequest {
  owner: string;
  /** The task file's name (validated identifier, no `.py`). */
  title: string;
  /** The validated version the task must run (its bytes: `storage.files.loadVersion(owner, title, sha256)`). */
  sha256: string;
  /** The dependency lock of that version, when it has one: the task runs with this lock's layer. */
  lockSha256?: string;
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

export interface TaskListQuery {
  status?: TaskStatus;
  title?: string;
  limit: number;
  offset: number;
}

export interface TaskListPage {
  tasks: TaskState[];
  offset: number;
  limit: number;
  /** Present when there are more tasks after this page. */
  next_offset?: number;
}

export interface TaskService {
  create(req: TaskCreateRequest): Promise<CreatedTask>;
  /** 404 (NotFoundError) for unknown ids and other owners' tasks alike. */
  /** With `wait`: a long poll (answers once the status differs from `wait.known` or is final, or after `wait.seconds`). */
  get(owner: string, taskId: string, wait?: WaitRequest<TaskStatus>): Promise<TaskState>;
  list(owner: string, query: TaskListQuery): Promise<TaskListPage>;
  /** Requests cancellation of an unfinished task; 409 once it has finished. */
  cancel(owner: string, taskId: string): Promise<TaskState>;
}

const notEnabled = async (): Promise<never> => {
  throw new NotImplementedError('task execution is not enabled in this build', 'tasks_not_enabled');
};

export const tasksNotEnabled: TaskService = { create: notEnabled, get: notEnabled, list: notEnabled, cancel: notEnabled };
