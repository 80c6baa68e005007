/**
 * `runTask`: one production run of a validated task file. Waits durably for `scheduled_at`, runs
 * the pinned file version in a sandbox (through an activity that inherits the task's priority key
 * and owner fairness key), retries infrastructure failures, fails at once on the handler's own failures. The public state
 * lives in the memo (readable with `describe`, even with no worker up) and in search attributes.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { TaskActivities, TaskRunMetrics } from '../activities/task';
import {
  initialTaskState,
  isFinalTaskStatus,
  NON_RETRYABLE_TASK_FAILURES,
  TASK_FAILURE,
  TASK_STATUS,
  taskStartedSignal,
  taskStateQuery,
  taskWaitUpdate,
  type TaskInput,
  type TaskState,
} from '../domain/task';
import { answerWaitForChange } from './wait-for-change';

const withoutResult = ({ result: _result, ...small }: TaskState): TaskState => small;

const { runTaskInSandbox } = proxyActivities<TaskActivities>({
  // Queued work waits in the task queue (no schedule-to-start limit); once started, the activity may
  // still wait for a warm container of the keyed pool, heartbeating meanwhile.
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '5 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 5,
    nonRetryableErrorTypes: [...NON_RETRYABLE_TASK_FAILURES],
  },
});

// Retried until the database answers: a task's end is never lost, only noted late.
const { recordTaskEnd } = proxyLocalActivities<TaskActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});

/** Bytes the result takes (what the owner's stored-bytes quota counts of it). */
const resultBytes = (result: unknown): number => (result === undefined ? 0 : new TextEncoder().encode(JSON.stringify(result)).length);

export async function runTask(input: TaskInput): Promise<TaskState> {
  const state: TaskState = { ...initialTaskState(input, Date.now()), status: 'QUEUED' };
  const publish = (patch: Partial<TaskState>) => {
    Object.assign(state, patch);
    // The result can be large; it stays in the workflow's result, the memo carries the rest.
    upsertMemo({ state: withoutResult(state) });
    upsertSearchAttributes([{ key: TASK_STATUS, value: state.status }]);
  };
  setHandler(taskStateQuery, () => state);
  // The result stays out of the answer (the API reads a final state from the workflow's result).
  const waitersAnswered = answerWaitForChange(
    taskWaitUpdate,
    () => withoutResult(state),
    () => state.status,
    isFinalTaskStatus,
  );
  // The final state, once every waiting `waitForChange` caller has had it.
  const finish = async () => {
    await CancellationScope.nonCancellable(() =>
      recordTaskEnd({ taskId: input.taskId, status: state.status, resultBytes: resultBytes(state.result) }),
    );
    await waitersAnswered();
    return state;
  };
  setHandler(taskStartedSignal, ({ attempt, startedAt }) => {
    if (state.status === 'QUEUED' || state.status === 'RUNNING') {
      publish({ status: 'RUNNING', attempts: attempt, started_at: state.started_at ?? startedAt });
    }
  });

  try {
    const wait = input.scheduledAt ? Date.parse(input.scheduledAt) - Date.now() : 0;
    if (wait > 0) {
      publish({ status: 'SCHEDULED' });
      await sleep(wait);
      publish({ status: 'QUEUED' });
    } else {
      publish({});
    }
    const out = await runTaskInSandbox(input);
    publish({
      status: 'COMPLETED',
      result: out.result,
      metrics: out.metrics,
      attempts: out.attempt,
      started_at: state.started_at ?? out.startedAt,
      finished_at: new Date().toISOString(),
    });
  } catch (err) {
    if (isCancellation(err)) {
      // Record the cancellation even though the scope is cancelled.
      await CancellationScope.nonCancellable(async () => {
        publish({
          status: 'CANCELLED',
          error: { type: TASK_FAILURE.cancelled, message: 'the task was cancelled' },
          finished_at: new Date().toISOString(),
        });
      });
      return finish();
    }
    const cause = err instanceof ActivityFailure ? err.cause : err;
    const app = cause instanceof ApplicationFailure ? cause : undefined;
    const details = (app?.details?.[0] ?? {}) as { metrics?: TaskRunMetrics; attempt?: number; traceback?: string; startedAt?: string };
    publish({
      status: 'FAILED',
      error: {
        type: app?.type ?? TASK_FAILURE.infrastructure,
        message: app?.message ?? (cause as Error)?.message ?? 'the task failed',
        ...(details.traceback ? { traceback: details.traceback } : {}),
      },
      ...(details.metrics ? { metrics: details.metrics } : {}),
      attempts: details.attempt ?? state.attempts,
      ...((state.started_at ?? details.startedAt) ? { started_at: state.started_at ?? details.startedAt } : {}),
      finished_at: new Date().toISOString(),
    });
  }
  return finish();
}
