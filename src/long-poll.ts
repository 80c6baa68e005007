/**
 * The API side of the long poll (`?wait=SECONDS&known_status=STATUS`, domain/wait.ts): the workflow
 * itself answers through its `waitForChange` update as soon as its status changes. When it cannot
 * answer (closed, no worker, Temporal down) `wait` resolves `undefined` and the caller reads the
 * status the ordinary way.
 *
 * A workflow takes at most 10 updates in flight (server default `history.maxInFlightUpdates`; past
 * that the server aborts them and the SDK retries, slowing every waiter), so concurrent waits of this
 * process on the same workflow and known status share one update.
 */
import type { UpdateDefinition } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import type { Logger } from './logger';
import { MAX_WAIT_SECONDS, type WaitForChange, type WaitUntil } from '../domain/wait';

export interface WaitRequest<S extends string> {
  /** 0..MAX_WAIT_SECONDS; 0 means answer at once (no wait). */
  seconds: number;
  known?: S;
  /** `final`: skip the status changes on the way (see `result`). */
  until?: WaitUntil;
}

/** How much longer than the wait itself an update's RPCs may take before we give up on them. */
const RPC_SLACK_MS = 2000;

interface Shared<T> {
  answer: Promise<T | undefined>;
  /** When the shared update's own timeout ends. */
  until: number;
}

export class WorkflowWaits {
  private readonly inflight = new Map<string, Shared<unknown>>();

  constructor(
    private readonly client: Client,
    private readonly log: Logger,
  ) {}

  /**
   * The workflow's state once its status differs from `req.known` (or is final), or at the end of the
   * wait with the status unchanged; `undefined` when the workflow could not answer.
   */
  async wait<T, S extends string>(
    workflowId: string,
    update: UpdateDefinition<T, [WaitForChange<S>]>,
    req: WaitRequest<S>,
    statusOf: (answer: T) => S,
  ): Promise<T | undefined> {
    const deadline = Date.now() + Math.min(req.seconds, MAX_WAIT_SECONDS) * 1000;
    for (;;) {
      const left = Math.floor(deadline - Date.now());
      if (left < 1) return undefined;
      if (req.known === undefined) return this.ask(workflowId, update, { timeoutMs: left });
      const key = `${workflowId}\0${req.known}`;
      let shared = this.inflight.get(key) as Shared<T> | undefined;
      if (!shared) {
        const answer = this.ask(workflowId, update, { known: req.known, timeoutMs: left });
        const entry: Shared<T> = { answer, until: deadline };
        this.inflight.set(key, entry);
        void answer.finally(() => this.inflight.get(key) === entry && this.inflight.delete(key));
        shared = entry;
      }
      const answer = shared.until > deadline ? await beforeDeadline(shared.answer, left) : await shared.answer;
      if (answer === undefined) return undefined;
      // A shared update that ended (unchanged) before our own deadline: wait on for the rest.
      if (statusOf(answer) !== req.known || shared.until >= deadline - 10) return answer;
    }
  }

  /**
   * The workflow's result once it closes, or `undefined` when `seconds` pass first or the result cannot
   * be read (failed, terminated, Temporal down): the caller then reads the status the ordinary way.
   * A long poll on the workflow's history, so it adds no workflow task, whatever the number of waiters.
   */
  async result<T>(workflowId: string, seconds: number): Promise<T | undefined> {
    const handle = this.client.workflow.getHandle(workflowId);
    try {
      const ms = Math.min(seconds, MAX_WAIT_SECONDS) * 1000;
      return (await this.client.connection.withDeadline(Date.now() + ms, () => handle.result())) as T;
    } catch (err) {
      this.log.debug('long poll: no result before the wait ended', { workflowId, error: (err as Error).message });
      return undefined;
    }
  }

  private async ask<T, S extends string>(
    workflowId: string,
    update: UpdateDefinition<T, [WaitForChange<S>]>,
    arg: WaitForChange<S>,
  ): Promise<T | undefined> {
    const handle = this.client.workflow.getHandle(workflowId);
    try {
      return await this.client.connection.withDeadline(Date.now() + arg.timeoutMs + RPC_SLACK_MS, () =>
        handle.executeUpdate(update, { args: [arg] }),
      );
    } catch (err) {
      // Closed (WorkflowNotFoundError), no worker took the update in time, Temporal unreachable: the caller reads.
      this.log.debug('long poll: the workflow did not answer', { workflowId, error: (err as Error).message });
      return undefined;
    }
  }
}

/** `p`'s value, or undefined if `ms` pass first. */
async function beforeDeadline<T>(p: Promise<T | undefined>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
