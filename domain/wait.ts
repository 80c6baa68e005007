/**
 * The long poll (`GET ...?wait=SECONDS&known_status=STATUS`; the API side is src/long-poll.ts). Pure.
 * `waitForChange` is the workflow Update earlier versions of the API sent (it resolves once the status
 * differs from `known` or is final, or after `timeoutMs`); workflows keep answering it only so that
 * those which took it replay (workflows/wait-for-change.ts).
 */
export const WAIT_FOR_CHANGE_UPDATE = 'waitForChange';
/**
 * What a long poll waits for: `change` (default) answers at the first status change, `final` only at
 * the final status.
 */
export const WAIT_UNTIL = ['change', 'final'] as const;
export type WaitUntil = (typeof WAIT_UNTIL)[number];
/** The longest a client may wait in one request, in seconds. */
export const MAX_WAIT_SECONDS = 60;

export interface WaitForChange<S extends string> {
  known?: S;
  /** 1 .. MAX_WAIT_SECONDS * 1000. */
  timeoutMs: number;
}
