/**
 * The `TaskService` backed by Temporal: one `runTask` workflow per task on the task queue, carrying
 * the task's priority key and its owner as fairness key (domain/priority.ts).
 * A task's public state is read from the workflow's memo (live, and readable with no worker up)
 * and, once it has closed, from its result; lists come from visibility (search attributes).
 */
import crypto from 'node:crypto';
import { WorkflowNotFoundError, type Client, type WorkflowExecutionDescription, type WorkflowHandle } from '@temporalio/client';
import type { Config } from '../config';
import { ConflictError, NotFoundError, ServiceUnavailableError } from '../errors';
import type { Logger } from '../logger';
import { WorkflowWaits, type WaitRequest } from '../long-poll';
import { WorkflowStarter } from '../workflow-starter';
import type { TaskRecords } from '../storage';
import type { CreatedTask, TaskCreateRequest, TaskListQuery, TaskListPage, TaskService } from './task-service';
import { TASK_ID_RE } from '../../domain/names';
import { taskPriority } from '../../domain/priority';
import {
  FILE_NAME,
  initialTaskState,
  isFinalTaskStatus,
  OWNER,
  TASK_STATUS,
  TASK_WORKFLOW,
  taskWorkflowId,
  type TaskInput,
  type TaskState,
  type TaskPriority,
  type TaskStatus,
} from '../../domain/task';

/** Temporal being down is the platform's problem, not the caller's: 503, and nothing is lost. */
async function temporalCall<T>(what: string, log: Logger, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new NotFoundError('no such task', 'task_not_found');
    log.error(`temporal: ${what} failed`, { error: (err as Error).message });
    throw new ServiceUnavailableError('the workflow service is unavailable; try again shortly', 'temporal_unavailable');
  }
}

export interface TemporalTaskServiceDeps {
  client: Client;
  config: Config;
  log: Logger;
  /** The tasks' rows (quotas across replicas). */
  records: TaskRecords;
  /** Starts the task workflows (eagerly when a worker of this process polls the queue); default: through `client`. */
  starter?: WorkflowStarter;
}

export class TemporalTaskService implements TaskService {
  private readonly waits: WorkflowWaits<TaskState, TaskStatus>;
  private readonly client: Client;
  private readonly config: Config;
  private readonly log: Logger;
  private readonly starter: WorkflowStarter;

  constructor(private readonly deps: TemporalTaskServiceDeps) {
    ({ client: this.client, config: this.config, log: this.log } = deps);
    this.starter = deps.starter ?? new WorkflowStarter(deps.client);
    this.waits = new WorkflowWaits(
      this.client,
      this.log,
      { status: (s) => s.status, isFinal: isFinalTaskStatus },
      this.config.quotas.longPolls,
    );
  }

  /** Over a quota (tasks per minute, unfinished tasks, stored bytes): 429 and nothing is started. */
  async create(req: TaskCreateRequest): Promise<CreatedTask> {
    const taskId = crypto.randomUUID();
    const payloadBytes = Buffer.byteLength(JSON.stringify(req.payload ?? null));
    return this.deps.records.create(
      { taskId, owner: req.owner, title: req.title, sha256: req.sha256, lockSha256: req.lockSha256, payloadBytes, priority: req.priority },
      this.config.quotas,
      (id) => this.stillRunning(id),
      (priority) => this.start(taskId, { ...req, priority }, req.priority),
    );
  }

  /** Whether a task's workflow is still running; a workflow Temporal cannot find has ended (its history expired). */
  private async stillRunning(taskId: string): Promise<boolean> {
    try {
      const d = await this.client.workflow.getHandle(taskWorkflowId(taskId)).describe();
      return d.status.name === 'RUNNING';
    } catch (err) {
      // Unsure (Temporal slow or down): count it; only a sure "gone" frees the place.
      return !(err instanceof WorkflowNotFoundError);
    }
  }

  /** Starts the workflow with `req.priority` as admitted; the answer names `requested` when that differs. */
  private async start(taskId: string, req: TaskCreateRequest, requested: TaskPriority): Promise<CreatedTask> {
    const createdAt = new Date().toISOString();
    const input: TaskInput = {
      taskId,
      owner: req.owner,
      title: req.title,
      sha256: req.sha256,
      ...(req.lockSha256 ? { lockSha256: req.lockSha256 } : {}),
      payload: req.payload,
      priority: req.priority,
      createdAt,
      ...(req.scheduledAt ? { scheduledAt: req.scheduledAt } : {}),
    };
    const state = initialTaskState(input, Date.now());
    const status = state.status;
    await temporalCall('start task', this.log, () =>
      this.starter.start(TASK_WORKFLOW, {
        taskQueue: this.config.taskQueue,
        workflowId: taskWorkflowId(taskId),
        priority: taskPriority(req.priority, req.owner),
        args: [input],
        typedSearchAttributes: [
          { key: OWNER, value: req.owner },
          { key: FILE_NAME, value: req.title },
          { key: TASK_STATUS, value: status },
        ],
        memo: { state },
      }),
    );
    this.log.info('task created', { taskId, owner: req.owner, title: req.title, priority: req.priority, requested, status });
    return {
      task_id: taskId,
      status,
      title: req.title,
      priority: req.priority,
      ...(requested !== req.priority ? { requested_priority: requested } : {}),
      sha256: req.sha256,
      created_at: createdAt,
      ...(req.scheduledAt ? { scheduled_at: req.scheduledAt } : {}),
    };
  }

  /**
   * The task's state; 404 for unknown ids and for other owners' tasks alike. With `wait`, answers once the
   * status differs from `wait.known` (or, `until: 'final'`, only) when it is final, at the latest after `wait.seconds`
   * (src/long-poll.ts).
   */
  async get(owner: string, taskId: string, wait?: WaitRequest<TaskStatus>): Promise<TaskState> {
    const deadline = Date.now() + (wait?.seconds ?? 0) * 1000;
    const { handle, description } = await this.describe(owner, taskId);
    if (!wait?.seconds || description.status.name !== 'RUNNING') return this.stateOf(handle, description);
    // One read per change of the workflow, shared by its waiters: the memo, or the result once closed.
    const answer = await this.waits.wait(owner, handle.workflowId, wait, deadline, async () =>
      this.stateOf(handle, await handle.describe()),
    );
    return answer ?? this.get(owner, taskId);
  }

  /** The public state: the memo while the workflow runs, its result (which carries the task's result) once closed. */
  private async stateOf(handle: WorkflowHandle, description: WorkflowExecutionDescription): Promise<TaskState> {
    const memo = (description.memo as { state?: TaskState } | undefined)?.state;
    if (description.status.name === 'RUNNING') return memo!;
    return temporalCall('read task result', this.log, async () => {
      try {
        return (await handle.result()) as TaskState;
      } catch (err) {
        // Terminated or timed out from outside TaskFlow: report it rather than fail the request.
        return { ...memo!, status: 'FAILED', error: { type: description.status.name, message: (err as Error).message } };
      }
    });
  }

  async list(owner: string, q: TaskListQuery): Promise<TaskListPage> {
    const clauses = [`WorkflowType = '${TASK_WORKFLOW}'`, `Owner = '${owner}'`];
    if (q.status) clauses.push(`TaskStatus = '${q.status}'`);
    if (q.title) clauses.push(`FileName = '${q.title}'`);
    const query = clauses.join(' AND ');
    const tasks: TaskState[] = [];
    let seen = 0;
    await temporalCall('list tasks', this.log, async () => {
      for await (const wf of this.client.workflow.list({ query, pageSize: Math.min(1000, q.offset + q.limit + 1) })) {
        if (seen++ < q.offset) continue;
        if (tasks.length === q.limit) break;
        const state = (wf.memo as { state?: TaskState } | undefined)?.state;
        const status = wf.typedSearchAttributes.get(TASK_STATUS);
        if (state) tasks.push({ ...state, ...(status ? { status: status as TaskState['status'] } : {}) });
      }
    });
    const more = seen > q.offset + tasks.length;
    return { tasks, offset: q.offset, limit: q.limit, ...(more ? { next_offset: q.offset + tasks.length } : {}) };
  }

  /** Cancels a task that has not finished; 409 once it has. */
  async cancel(owner: string, taskId: string): Promise<TaskState> {
    const { handle, description } = await this.describe(owner, taskId);
    const state = (description.memo as { state?: TaskState } | undefined)?.state;
    if (description.status.name !== 'RUNNING') throw new ConflictError('the task has already finished', 'task_finished');
    await temporalCall('cancel task', this.log, () => handle.cancel());
    this.log.info('task cancel requested', { taskId, owner });
    return state!;
  }

  private async describe(owner: string, taskId: string): Promise<{ handle: WorkflowHandle; description: WorkflowExecutionDescription }> {
    if (!TASK_ID_RE.test(taskId)) throw new NotFoundError('no such task', 'task_not_found');
    const handle = this.client.workflow.getHandle(taskWorkflowId(taskId));
    const description = await temporalCall('describe task', this.log, () => handle.describe());
    const state = (description.memo as { state?: TaskState } | undefined)?.state;
    if (description.type !== TASK_WORKFLOW || !state || state.owner !== owner) throw new NotFoundError('no such task', 'task_not_found');
    return { handle, description };
  }
}
