/**
 * The one way TaskFlow's long activities stay alive and cancellable: heartbeat on a timer (with the
 * last progress details) while the work runs, and turn the sandbox's cancellation into Temporal's.
 * Cancellation reaches an activity only through heartbeats, so they must keep flowing.
 */
import { CancelledFailure, Context } from '@temporalio/activity';
import { SandboxCancelledError } from '../sandbox';

const HEARTBEAT_EVERY_MS = 1000;

export type Beat = (details?: unknown) => void;

export async function heartbeating<T>(what: string, work: (beat: Beat, signal: AbortSignal) => Promise<T>): Promise<T> {
  const ctx = Context.current();
  let last: unknown;
  const beat: Beat = (details) => {
    if (details !== undefined) last = details;
    ctx.heartbeat(last);
  };
  const timer = setInterval(() => beat(), HEARTBEAT_EVERY_MS);
  beat();
  try {
    return await work(beat, ctx.cancellationSignal);
  } catch (err) {
    if (err instanceof SandboxCancelledError || ctx.cancellationSignal.aborted) {
      throw new CancelledFailure(`${what} cancelled`);
    }
    throw err;
  } finally {
    clearInterval(timer);
  }
}
