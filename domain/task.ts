/**
 * The task vocabulary shared by the task workflow, its activity, the task service and the API:
 * states, priorities, failure types, the public state and the messages the workflow answers.
 * Pure (safe inside the workflow bundle).
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { WAIT_FOR_CHANGE_UPDATE, type WaitForChange } from './wait';

export { TASK_STATUS, OWNER, FILE_NAME } from './search-attributes';

export const TASK_STATUSES = ['SCHEDULED', 'QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const isFinalTaskStatus = (s: TaskStatus): boolean => s === 'COMPLETED' || s === 'FAILED' || s === 'CANCELLED';
/** The most tasks one page of `GET /tasks/` lists. */
export const MAX_TASK_PAGE = 100;

export const TASK_PRIORITIES = ['high', 'low'] as const;
export type TaskPriority = (typeof TASK_PRIORITIES)[number];
export const DEFAULT_TASK_PRIORITY: TaskPriority = 'low';

/**
 * Why a task failed, as the `error.type` a client sees. The handler's own failures are final;
 * `InfrastructureError` is what is left after the infrastructure retries ran out.
 */
export const TASK_FAILURE = {
  /** The handler raised, or the module failed to load. */
  handlerFailed: 'HandlerFailed',
  handlerTimeout: 'HandlerTimeout',
  /** Memory (or another resource limit) exceeded. */
  limitExceeded: 'LimitExceeded',
  /** A forbidden action (process spawn, network socket, signal...) was attempted. */
  forbiddenBehaviour: 'ForbiddenBehaviour',
  /** The handler's process or its whole sandbox ended under it (not a memory kill, not a timeout). */
  handlerCrashed: 'HandlerCrashed',
  /** The pinned validated version is gone or no longer matches its sha256. */
  versionUnavailable: 'VersionUnavailable',
  infrastructure: 'InfrastructureError',
  cancelled: 'Cancelled',
} as const;
export type TaskFailureType = (typeof TASK_FAILURE)[keyof typeof TASK_FAILURE];

/** Handler-caused failures: retrying would only repeat them. */
export const NON_RETRYABLE_TASK_FAILURES: readonly TaskFailureType[] = [
  TASK_FAILURE.handlerFailed,
  TASK_FAILURE.handlerTimeout,
  TASK_FAILURE.limitExceeded,
  TASK_FAILURE.forbiddenBehaviour,
  TASK_FAILURE.handlerCrashed,
  TASK_FAILURE.versionUnavailable,
];

export interface TaskInput {
  taskId: string;
  owner: string;
  /** The task file's name (without `.py`). */
  title: string;
  /** The validated version this task is pinned to. */
  sha256: string;
  /** ... and that version's dependency lock (the layer the task runs with), when it declares dependencies. */
  lockSha256?: string;
  payload: unknown;
  priority: TaskPriority;
  /** ISO time; absent or past means now. */
  scheduledAt?: string;
  createdAt: string;
}

export interface TaskError {
  type: TaskFailureType | string;
  message: string;
  traceback?: string;
}

export interface TaskState {
  task_id: string;
  title: string;
  owner: string;
  priority: TaskPriority;
  sha256: string;
  lock_sha256?: string;
  status: TaskStatus;
  result?: unknown;
  error?: TaskError;
  attempts: number;
  created_at: string;
  scheduled_at?: string;
  started_at?: string;
  finished_at?: string;
  metrics?: Record<string, unknown>;
}

/** The state a task has from the moment it is created (SCHEDULED when `scheduledAt` lies ahead of `now`). */
export function initialTaskState(input: TaskInput, now: number): TaskState {
  const scheduled = input.scheduledAt !== undefined && Date.parse(input.scheduledAt) > now;
  return {
    task_id: input.taskId,
    title: input.title,
    owner: input.owner,
    priority: input.priority,
    sha256: input.sha256,
    ...(input.lockSha256 ? { lock_sha256: input.lockSha256 } : {}),
    status: scheduled ? 'SCHEDULED' : 'QUEUED',
    attempts: 0,
    created_at: input.createdAt,
    ...(input.scheduledAt ? { scheduled_at: input.scheduledAt } : {}),
  };
}

export const TASK_WORKFLOW = 'runTask';
export const taskWorkflowId = (taskId: string): string => `task-${taskId}`;
export const taskStateQuery = defineQuery<TaskState>('taskState');
/** The long poll behind `GET /tasks/{task_id}?wait=` (domain/wait.ts). */
export const taskWaitUpdate = defineUpdate<TaskState, [WaitForChange<TaskStatus>]>(WAIT_FOR_CHANGE_UPDATE);
export const taskStartedSignal = defineSignal<[{ attempt: number; startedAt: string }]>('taskStarted');
