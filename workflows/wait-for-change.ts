/**
 * The workflow side of the long poll (domain/wait.ts): registers the `waitForChange` update, which
 * parks until the status differs from the caller's `known` one (or is final), bounded by its timeout.
 * Only a helper: the workflow modules export workflow types only.
 *
 * The API no longer sends this update (src/long-poll.ts watches the history instead, so a read never
 * writes to a workflow); the handler stays registered only so that workflows which took such updates
 * before replay unchanged. Remove it once none of those is open.
 */
import type { UpdateDefinition } from '@temporalio/common';
import { allHandlersFinished, CancellationScope, condition, setHandler } from '@temporalio/workflow';
import { MAX_WAIT_SECONDS, type WaitForChange } from '../domain/wait';

/** Registers the update; the function it returns resolves once every waiting caller has had its answer. */
export function answerWaitForChange<S extends string, T>(
  update: UpdateDefinition<T, [WaitForChange<S>]>,
  view: () => T,
  status: () => S,
  isFinal: (s: S) => boolean,
): () => Promise<void> {
  setHandler(
    update,
    async ({ known, timeoutMs }) => {
      const from = known ?? status();
      // Not cancellable: a cancelled workflow still reaches its final status, which is the answer.
      await CancellationScope.nonCancellable(() => condition(() => status() !== from || isFinal(status()), timeoutMs));
      return view();
    },
    {
      // Rejected updates leave no trace in the history.
      validator: ({ timeoutMs }) => {
        if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_WAIT_SECONDS * 1000) {
          throw new RangeError(`timeoutMs must be an integer in 1..${MAX_WAIT_SECONDS * 1000}`);
        }
      },
    },
  );
  // A workflow that returned with an update still running would leave that caller without its answer.
  return () => CancellationScope.nonCancellable(() => condition(allHandlersFinished));
}
