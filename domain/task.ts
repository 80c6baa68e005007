/** Types and search-attribute keys shared by the task workflow, its activity and the API. */
export { TASK_STATUS, OWNER, FILE_NAME } from './search-attributes';

export type TaskStatus = 'SCHEDULED' | 'QUEUED' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';
export const TASK_STATUSES: readonly TaskStatus[] = ['SCHEDULED', 'QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'];
export type TaskPriority = 'high' | 'low';

export interface TaskInput {
  taskId: string;
  owner: string;
  /** The task file's name (without `.py`). */
  title: string;
  /** The validated version this task is pinned to. */
  sha256: string;
  payload: unknown;
  priority: TaskPriority;
  /** ISO time; absent or past means now. */
  scheduledAt?: string;
  createdAt: string;
}

export interface TaskState {
  task_id: string;
  title: string;
  owner: string;
  priority: TaskPriority;
  sha256: string;
  status: TaskStatus;
  result?: unknown;
  error?: { type: string; message: string; traceback?: string };
  attempts: number;
  created_at: string;
  scheduled_at?: string;
  started_at?: string;
  finished_at?: string;
  metrics?: Record<string, unknown>;
}

export const taskWorkflowId = (taskId: string): string => `task-${taskId}`;
