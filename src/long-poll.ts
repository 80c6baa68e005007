/**
 * The API side of the long poll (`?wait=SECONDS&known_status=STATUS&until=`, domain/wait.ts).
 *
 * A status read never writes to the workflow: no Update, no signal. Every waiter of this process on
 * one workflow shares one watch, which reads the state (the caller's `read`: a query, the memo, the
 * database record) once, then again each time the workflow's history grows — a long poll on the
 * history (`waitNewEvent`), which costs the workflow nothing — until nobody waits or the status is
 * final. The history of a workflow therefore holds what the workflow itself did, whatever clients do.
 *
 * Each waiter's deadline is its own timer, answered from the watch's last read without any RPC, so
 * deadlines hold under any number of waiters. An owner may have at most `maxPerOwner` waits open in
 * one watch set (429 `long_polls` beyond).
 */
import type { Client } from '@temporalio/client';
import type { Logger } from './logger';
import { QuotaExceededError } from './errors';
import { QUOTA_DEFINITIONS } from './quotas/definitions';
import { MAX_WAIT_SECONDS, type WaitUntil } from '../domain/wait';

export interface WaitRequest<S extends string> {
  /** 0..MAX_WAIT_SECONDS; 0 means answer at once (no wait). */
  seconds: number;
  known?: S;
  /** `final`: skip the status changes on the way. */
  until?: WaitUntil;
}

/**
 * The resource's state now; throws when it cannot be read (the watch tries again). `changes`: some
 * waiter wants each status on the way; when none does, a read may skip what only those need (a
 * validation's status query, which waits behind the workflow task in progress).
 */
export type ReadState<V> = (changes: boolean) => Promise<V>;

export interface WatchedState<V, S extends string> {
  status: (v: V) => S;
  isFinal: (s: S) => boolean;
}

interface Waiter<V, S> {
  owner: string;
  /** Unset until the first read when the request named no status: then the status at that read. */
  known?: S;
  finalOnly: boolean;
  answer: (v: V | undefined) => void;
}

interface Watch<V, S> {
  latest?: V;
  waiters: Set<Waiter<V, S>>;
  stop: AbortController;
  /** Ends the history poll under way so the watch reads at once (a waiter of changes came while it had no live read). */
  wake: AbortController;
}

/** After a failed read or history poll (Temporal or the database away), the watch tries again after this. */
const RETRY_MS = 1000;

export class WorkflowWaits<V, S extends string> {
  private readonly watches = new Map<string, Watch<V, S>>();
  private readonly perOwner = new Map<string, number>();

  constructor(
    private readonly client: Client,
    private readonly log: Logger,
    private readonly state: WatchedState<V, S>,
    private readonly maxPerOwner: number,
  ) {}

  /**
   * The state once its status differs from `req.known` (or is final; with `until: 'final'` only then), or
   * at `deadline` (ms since the epoch) the last state read; `undefined` when nothing could be read by then.
   * `read` is used by the watch this wait starts, or is dropped when one is running already.
   */
  wait(owner: string, workflowId: string, req: WaitRequest<S>, deadline: number, read: ReadState<V>): Promise<V | undefined> {
    const open = this.perOwner.get(owner) ?? 0;
    if (open >= this.maxPerOwner) {
      const d = QUOTA_DEFINITIONS.longPolls;
      throw new QuotaExceededError(d.limit, this.maxPerOwner, d.retryAfterS, `at most ${this.maxPerOwner} long polls waiting at once`);
    }
    const ms = Math.min(deadline - Date.now(), MAX_WAIT_SECONDS * 1000);
    if (ms < 1) return Promise.resolve(undefined);
    this.perOwner.set(owner, open + 1);
    let watch = this.watches.get(workflowId);
    // A stopped watch (its last waiter left a moment ago) is ending: start a fresh one.
    if (!watch || watch.stop.signal.aborted) {
      watch = { waiters: new Set(), stop: new AbortController(), wake: new AbortController() };
      this.watches.set(workflowId, watch);
      void this.run(workflowId, watch, read);
    }
    const w = watch;
    return new Promise<V | undefined>((resolve) => {
      const waiter: Waiter<V, S> = {
        owner,
        finalOnly: req.until === 'final',
        ...(req.known !== undefined ? { known: req.known } : w.latest !== undefined ? { known: this.state.status(w.latest) } : {}),
        answer: (v) => {
          if (!w.waiters.delete(waiter)) return;
          clearTimeout(timer);
          const left = (this.perOwner.get(owner) ?? 1) - 1;
          if (left > 0) this.perOwner.set(owner, left);
          else this.perOwner.delete(owner);
          if (w.waiters.size === 0) w.stop.abort();
          resolve(v);
        },
      };
      const timer = setTimeout(() => waiter.answer(w.latest), ms);
      w.waiters.add(waiter);
      if (w.latest !== undefined) this.offer(waiter, w.latest);
      else if (!waiter.finalOnly) w.wake.abort();
    });
  }

  private offer(waiter: Waiter<V, S>, v: V): void {
    const status = this.state.status(v);
    if (waiter.known === undefined) waiter.known = status;
    if (this.state.isFinal(status) || (!waiter.finalOnly && status !== waiter.known)) waiter.answer(v);
  }

  private async run(workflowId: string, watch: Watch<V, S>, read: ReadState<V>): Promise<void> {
    let token: Uint8Array | undefined;
    let closed = false;
    try {
      while (!watch.stop.signal.aborted) {
        try {
          const wantsChanges = () => [...watch.waiters].some((w) => !w.finalOnly);
          const changes = wantsChanges();
          const v = await read(changes);
          // A read for final-only waiters may not be the live status: it counts only once final (and a
          // waiter of changes who came during it gets a live read at once).
          if (!changes && !this.state.isFinal(this.state.status(v))) {
            if (wantsChanges()) continue;
          } else {
            watch.latest = v;
            for (const waiter of [...watch.waiters]) this.offer(waiter, v);
          }
          // Closed without a final status (terminated from outside): nothing more will change.
          if (closed || this.state.isFinal(this.state.status(v))) break;
          token = await this.historyGrew(workflowId, token, AbortSignal.any([watch.stop.signal, watch.wake.signal]));
          closed = token === undefined;
        } catch (err) {
          if (watch.stop.signal.aborted) break;
          if (watch.wake.signal.aborted) {
            watch.wake = new AbortController();
            continue;
          }
          this.log.debug('long poll: could not read the workflow yet', { workflowId, error: (err as Error).message });
          token = undefined;
          await sleep(RETRY_MS, watch.stop.signal);
        }
      }
    } finally {
      // Final (every waiter has had it), nobody waits, or closed without a final status: then nothing
      // will change, and whoever still waits is answered by their own deadline.
      if (this.watches.get(workflowId) === watch) this.watches.delete(workflowId);
    }
  }

  /**
   * Returns once the workflow's history has events past `token` (the first call, without one, at once):
   * the server holds the call until then (or its own long-poll expiry, ~20 s). The token to go on from.
   */
  private async historyGrew(workflowId: string, token: Uint8Array | undefined, signal: AbortSignal): Promise<Uint8Array | undefined> {
    const res = await this.client.connection.withAbortSignal(signal, () =>
      this.client.workflowService.getWorkflowExecutionHistory({
        namespace: this.client.options.namespace,
        execution: { workflowId },
        ...(token ? { nextPageToken: token } : {}),
        waitNewEvent: true,
        skipArchival: true,
      }),
    );
    // No token: the workflow closed (the next read sees its final state).
    return res.nextPageToken?.length ? res.nextPageToken : undefined;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
