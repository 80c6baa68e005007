/**
 * The task run activity: loads the pinned file version, runs the handler in a keyed warm sandbox
 * and classifies what happened. (Which task runs next is Temporal's choice: priority, then fairness.)
 * Handler-caused failures (every run status but ok) are non-retryable; infrastructure failures are
 * thrown by the sandbox as plain errors and retried.
 */
import { CancelledFailure, Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { SandboxLimits } from '../src/config';
import type { Logger } from '../src/logger';
import type { Metrics, TaskRunOutcome } from '../src/metrics';
import { untilDatabaseAnswers } from '../src/db';
import { VersionUnavailableError } from '../src/storage';
import type { DependencyLayer, RunOutcome, Sandbox } from '../sandbox';
import { DependencyRejected } from '../src/dependencies';
import { heartbeating } from './heartbeat';
import { TASK_FAILURE, taskWorkflowId, type TaskFailureType, type TaskInput } from '../domain/task';

export interface TaskRunMetrics {
  wallMs: number;
  cpuMs: number;
  peakMemoryKiB: number;
  containerId: string;
  runtime: string;
  limits: { memoryMiB: number; payloadTimeoutMs: number };
  [key: string]: unknown;
}

export interface TaskRunResult {
  result: unknown;
  metrics: TaskRunMetrics;
  attempt: number;
  /** When the handler's run began (ISO): the task's started_at when RUNNING was never announced. */
  startedAt: string;
}

/**
 * A run that ends sooner than this goes straight from QUEUED to its final status: announcing RUNNING
 * would cost a signal and a workflow task (and a long-poll round) for a status nobody would see.
 */
export const RUNNING_NOTICE_MS = 100;

export interface TaskActivityDeps {
  sandbox: Sandbox;
  limits: SandboxLimits;
  /** The exact validated source for (owner, title, sha256); verifies the hash, else VersionUnavailableError. */
  loadVersion(owner: string, title: string, sha256: string): Promise<string>;
  /** A dependency lock's layer on this host, built from the lock (in the database) and the index when missing. */
  loadLayer?(lockSha256: string, signal: AbortSignal): Promise<DependencyLayer>;
  /** Notes the task's end in its row (what the task quotas count); idempotent. */
  taskFinished(taskId: string, status: string, resultBytes: number): Promise<void>;
  /** Tells the workflow the run has really started (status RUNNING, attempt number). */
  notifyStarted(workflowId: string, attempt: number, startedAt: string): Promise<void>;
  log: Logger;
  /** Each run's outcome is counted into it. */
  metrics?: Metrics;
}

/** How an attempt ended, in the failure types' vocabulary (an unclassified error is the infrastructure's). */
function outcomeOf(err: unknown): TaskRunOutcome {
  if (err instanceof CancelledFailure) return TASK_FAILURE.cancelled;
  const type = err instanceof ApplicationFailure ? err.type : undefined;
  return (Object.values(TASK_FAILURE) as string[]).includes(type ?? '') ? (type as TaskRunOutcome) : TASK_FAILURE.infrastructure;
}

function metricsOf(o: RunOutcome): TaskRunMetrics {
  return {
    runStatus: o.status,
    ...(o.syscalls.length ? { refusedSyscalls: o.syscalls.map((c) => c.syscall) } : {}),
    wallMs: o.wallMs,
    cpuMs: o.cpuMs,
    peakMemoryKiB: o.peakMemoryKiB,
    containerId: o.spec.containerId,
    runtime: o.spec.runtime,
    limits: { memoryMiB: o.spec.limits.memoryMiB, payloadTimeoutMs: o.spec.limits.payloadTimeoutMs },
    outputTruncated: o.outputTruncated,
    stdoutTail: o.stdoutTail.slice(-2000),
    stderrTail: o.stderrTail.slice(-2000),
  };
}

/**
 * What the handler did wrong, as a non-retryable failure, switched on the run's one status. Every
 * status but `ok` is the handler's doing (a crash of its sandbox included: retrying would only
 * repeat it); infrastructure failures never reach here, they are thrown by the sandbox.
 */
function handlerFailure(o: RunOutcome, limits: SandboxLimits, attempt: number, startedAt: string): ApplicationFailure {
  const details = { metrics: metricsOf(o), attempt, startedAt };
  const fail = (type: TaskFailureType, message: string, traceback?: string) =>
    ApplicationFailure.create({ type, message, nonRetryable: true, details: [{ ...details, traceback }] });
  const p = o.payloads[0];
  switch (o.status) {
    case 'forbidden': {
      const c = o.syscalls[0];
      if (c)
        return fail(
          TASK_FAILURE.forbiddenBehaviour,
          `the handler attempted a forbidden system call: ${c.syscall} (${c.meaning}); the sandbox refused it and was stopped`,
        );
      const f = o.forbidden[0];
      if (f) return fail(TASK_FAILURE.forbiddenBehaviour, `the handler attempted a forbidden action: ${f.event} (${f.detail})`);
      return fail(TASK_FAILURE.forbiddenBehaviour, `the handler tried to forge the sandbox's report (${o.forgedFrames} line(s))`);
    }
    case 'memory_limit':
      return fail(TASK_FAILURE.limitExceeded, `the handler exceeded the memory limit of ${limits.memoryMiB} MiB`);
    case 'timeout':
      return fail(TASK_FAILURE.handlerTimeout, `the handler did not finish within ${limits.payloadTimeoutMs} ms`);
    case 'crashed': {
      const why = o.exit ? `its sandbox ${o.exit.description}` : `${p?.error?.message ?? o.load.error?.message ?? 'its process ended'}`;
      return fail(TASK_FAILURE.handlerCrashed, `the handler crashed: ${why}`);
    }
    case 'handler_error':
    case 'ok': // not called for ok; typed exhaustively
      if (o.load.status !== 'ok' && o.load.error) {
        return fail(
          TASK_FAILURE.handlerFailed,
          `loading the task file failed: ${o.load.error.type}: ${o.load.error.message}`,
          o.load.error.traceback,
        );
      }
      return fail(TASK_FAILURE.handlerFailed, `${p?.error?.type ?? 'Error'}: ${p?.error?.message ?? ''}`, p?.error?.traceback);
  }
}

export interface TaskEnd {
  taskId: string;
  status: string;
  resultBytes: number;
}

export function createTaskActivities(deps: TaskActivityDeps) {
  /**
   * The version's layer. The index unreachable is retried like any infrastructure failure; a lock the
   * index can no longer satisfy (a wheel gone or changed) fails the task: retrying would not bring it back.
   */
  async function layerFor(lockSha256: string, signal: AbortSignal, attempt: number): Promise<DependencyLayer> {
    if (!deps.loadLayer) throw new Error('this task worker has no dependency layers configured');
    try {
      return await deps.loadLayer(lockSha256, signal);
    } catch (err) {
      if (err instanceof DependencyRejected)
        throw ApplicationFailure.create({
          type: TASK_FAILURE.versionUnavailable,
          message: `the version's dependencies cannot be installed any more (${err.code}): ${err.message}`,
          nonRetryable: true,
          details: [{ attempt }],
        });
      throw err;
    }
  }

  return {
    /** The workflow's last step (a local activity): the task's row is finished, freeing its quota place. */
    async recordTaskEnd(end: TaskEnd): Promise<void> {
      await deps.taskFinished(end.taskId, end.status, end.resultBytes);
    },

    async runTaskInSandbox(input: TaskInput): Promise<TaskRunResult> {
      const ctx = Context.current();
      const attempt = ctx.info.attempt;
      const log = deps.log.child({ taskId: input.taskId, attempt });
      let ended: TaskRunOutcome = TASK_FAILURE.infrastructure;
      try {
        const run = await heartbeating('task', async (beat, signal) => {
          let source: string;
          try {
            source = await untilDatabaseAnswers(() => deps.loadVersion(input.owner, input.title, input.sha256), signal);
          } catch (err) {
            if (err instanceof VersionUnavailableError) {
              throw ApplicationFailure.create({
                type: TASK_FAILURE.versionUnavailable,
                message: err.message,
                nonRetryable: true,
                details: [{ attempt }],
              });
            }
            throw err;
          }
          const layer = input.lockSha256 ? await layerFor(input.lockSha256, signal, attempt) : undefined;
          const startedAt = new Date().toISOString();
          const workflowId = ctx.info.workflowExecution?.workflowId ?? taskWorkflowId(input.taskId);
          const notice = setTimeout(() => {
            deps
              .notifyStarted(workflowId, attempt, startedAt)
              .catch((err: Error) => log.warn('could not mark the task running', { error: err.message }));
          }, RUNNING_NOTICE_MS);
          log.info('task run starting', { owner: input.owner, title: input.title, priority: input.priority });
          let outcome: RunOutcome;
          try {
            outcome = await deps.sandbox.runKeyed(
              { owner: input.owner, sha256: input.sha256 },
              { source, fileName: `${input.title}.py`, payloads: [input.payload], signal, onProgress: beat, ...(layer ? { layer } : {}) },
            );
          } finally {
            clearTimeout(notice);
          }
          log.info('task run finished', { status: outcome.status, wallMs: outcome.wallMs });
          if (outcome.status === 'ok') return { result: outcome.payloads[0].result, metrics: metricsOf(outcome), attempt, startedAt };
          throw handlerFailure(outcome, deps.limits, attempt, startedAt);
        });
        ended = 'ok';
        return run;
      } catch (err) {
        ended = outcomeOf(err);
        throw err;
      } finally {
        deps.metrics?.taskRunFinished(input.priority, ended);
      }
    },
  };
}

export type TaskActivities = ReturnType<typeof createTaskActivities>;
