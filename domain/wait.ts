/**
 * The long poll both workflows answer (`GET ...?wait=SECONDS&known_status=STATUS`): a workflow Update
 * named `waitForChange` that resolves once the status differs from `known` (absent: the status when the
 * update reaches the workflow) or is final, or after `timeoutMs` with the status unchanged. Pure.
 */
export const WAIT_FOR_CHANGE_UPDATE = 'waitForChange';
/**
 * What a long poll waits for: `change` (default) answers at the first status change, `final` only at
 * the final status — read from the workflow's result, which costs the workflow no extra step per status.
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
