/**
 * The task run activity: loads the pinned file version, runs the handler in a keyed warm sandbox
 * and classifies what happened. (Which task runs next is Temporal's choice: priority, then fairness.) Handler-caused
 * failures are non-retryable; infrastructure failures are thrown as plain errors and retried.
 */
import { CancelledFailure, Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { SandboxLimits } from '../src/config';
import type { Logger } from '../src/logger';
import type { Metrics, TaskRunOutcome } from '../src/metrics';
import { VersionUnavailableError } from '../src/storage';
import type { RunOutcome, Sandbox } from '../sandbox';
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

/** What the handler did wrong, as a non-retryable failure; undefined when the sandbox itself failed. */
function handlerFailure(o: RunOutcome, limits: SandboxLimits, attempt: number, startedAt: string): ApplicationFailure | undefined {
  const details = { metrics: metricsOf(o), attempt, startedAt };
  const fail = (type: TaskFailureType, message: string, traceback?: string) =>
    ApplicationFailure.create({ type, message, nonRetryable: true, details: [{ ...details, traceback }] });
  const p = o.payloads[0];
  if (o.forbidden.length) {
    const f = o.forbidden[0];
    return fail(TASK_FAILURE.forbiddenBehaviour, `the handler attempted a forbidden action: ${f.event} (${f.detail})`);
  }
  if (o.oom) return fail(TASK_FAILURE.limitExceeded, `the handler exceeded the memory limit of ${limits.memoryMiB} MiB`);
  if (o.load.status === 'timeout' || p?.status === 'timeout' || o.killReason === 'total_timeout') {
    return fail(TASK_FAILURE.handlerTimeout, `the handler did not finish within ${limits.payloadTimeoutMs} ms`);
  }
  if (o.load.status === 'error' && o.load.error) {
    return fail(TASK_FAILURE.handlerFailed, `loading the task file failed: ${o.load.error.type}: ${o.load.error.message}`, o.load.error.traceback);
  }
  if (p?.status === 'error' && p.error && p.error.type !== 'SandboxDied') {
    return fail(TASK_FAILURE.handlerFailed, `${p.error.type}: ${p.error.message}`, p.error.traceback);
  }
  return undefined;
}

export function createTaskActivities(deps: TaskActivityDeps) {
  return {
    async runTaskInSandbox(input: TaskInput): Promise<TaskRunResult> {
      const ctx = Context.current();
      const attempt = ctx.info.attempt;
      const log = deps.log.child({ taskId: input.taskId, attempt });
      let ended: TaskRunOutcome = TASK_FAILURE.infrastructure;
      try {
        const run = await heartbeating('task', async (beat, signal) => {
          let source: string;
          try {
            source = await deps.loadVersion(input.owner, input.title, input.sha256);
          } catch (err) {
            if (err instanceof VersionUnavailableError) {
              throw ApplicationFailure.create({ type: TASK_FAILURE.versionUnavailable, message: err.message, nonRetryable: true, details: [{ attempt }] });
            }
            throw err;
          }
          const startedAt = new Date().toISOString();
          const workflowId = ctx.info.workflowExecution?.workflowId ?? taskWorkflowId(input.taskId);
          const notice = setTimeout(() => {
            deps.notifyStarted(workflowId, attempt, startedAt).catch((err: Error) => log.warn('could not mark the task running', { error: err.message }));
          }, RUNNING_NOTICE_MS);
          log.info('task run starting', { owner: input.owner, title: input.title, priority: input.priority });
          let outcome: RunOutcome;
          try {
            outcome = await deps.sandbox.runKeyed(
              { owner: input.owner, sha256: input.sha256 },
              { source, fileName: `${input.title}.py`, payloads: [input.payload], signal, onProgress: beat },
            );
          } finally {
            clearTimeout(notice);
          }
          log.info('task run finished', { ok: outcome.ok, wallMs: outcome.wallMs });
          if (outcome.ok) return { result: outcome.payloads[0].result, metrics: metricsOf(outcome), attempt, startedAt };
          const failure = handlerFailure(outcome, deps.limits, attempt, startedAt);
          if (failure) throw failure;
          throw new Error(`sandbox failure (${outcome.killReason ?? 'unknown'}); will retry`);
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
