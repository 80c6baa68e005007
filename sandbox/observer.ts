/**
 * What the sandbox runtime tells about itself, for an operator's view (the application turns it into
 * metrics): container starts, finished runs, its pools, and whether the engine answers.
 */
import type { RunscInfo, SandboxRuntime } from './engine';
import type { ContainerKind } from './spec';

/** `check` is the static check; the others are runs in a container of that kind. */
export type RunKind = 'check' | ContainerKind;

/** `ok`/`failed`: the outcome's verdict on the code; `cancelled`: the caller gave up; `error`: the sandbox itself threw. */
export type RunResult = 'ok' | 'failed' | 'cancelled' | 'error';

export interface SandboxObserver {
  /** A container started (`ok`) or failed to; `warm` ones were started ahead of any request. */
  containerStarted(kind: ContainerKind, warm: boolean, seconds: number, ok: boolean): void;
  /** A check or a run finished, measured from taking a container to its outcome. */
  runFinished(kind: RunKind, seconds: number, result: RunResult): void;
}

export interface PoolStats {
  /** Single-use validation containers started ahead. */
  validation: { ready: number; starting: number };
  /** Long-lived static-check containers (they parse uploads, never run them). */
  checker: { idle: number; busy: number; starting: number };
  /** Production containers: idle ones keep a key (owner + file version), spares have never run code. */
  keyed?: { idle: number; busy: number; spares: number; starting: number };
}

export interface SandboxHealth {
  /** The Docker engine answered, and lists the runtime in use. */
  engine: boolean;
  runtime: SandboxRuntime;
  /** Under runsc: its release and platform, as the binary reported them at start-up. */
  runsc?: Pick<RunscInfo, 'version' | 'platform'>;
  /** Why not, when not: the engine's error, a missing runtime, or the last container start's failure. */
  problem?: string;
  /** The most recent container start failed (runsc not answering), even though the engine does. */
  lastStartFailed: boolean;
}
