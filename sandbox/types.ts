/** The sandbox runtime's public vocabulary: what callers hand in and what they get back. */
import type { SandboxLimits } from './limits';

export type Severity = 'error' | 'warning';

/** One static-check finding. `error` findings reject the file; `warning` ones are reported only. */
export interface Finding {
  code: string;
  severity: Severity;
  message: string;
  line?: number;
  col?: number;
  /** The source line and, under it, a caret at `col` (as a compiler shows it). */
  snippet?: string;
}

export interface CheckOutcome {
  ok: boolean;
  findings: Finding[];
  /** Literal `TEST_PAYLOADS` found at module level, if any (never executed: `ast.literal_eval`). */
  testPayloads?: unknown[];
  wallMs: number;
}

export type PayloadStatus = 'ok' | 'error' | 'timeout';

export interface HandlerError {
  type: string;
  message: string;
  /** The last lines of the traceback, capped. */
  traceback?: string;
}

export interface PayloadOutcome {
  index: number;
  status: PayloadStatus;
  result?: unknown;
  error?: HandlerError;
  wallMs: number;
}

/** A forbidden action the in-sandbox audit hook saw (and blocked). */
export interface ForbiddenEvent {
  event: string;
  detail: string;
  payloadIndex?: number;
}

export interface RunOutcome {
  /** True only when the file loaded, the contract held and every payload returned `ok`. */
  ok: boolean;
  /** Loading the module and checking the handler contract. */
  load: { status: 'ok' | 'error' | 'timeout' | 'skipped'; error?: HandlerError; wallMs: number };
  payloads: PayloadOutcome[];
  forbidden: ForbiddenEvent[];
  /** The container was OOM-killed (memory limit). */
  oom: boolean;
  /** The container ended without a report and not by OOM: the total wall timeout, or the agent died. */
  killed: boolean;
  killReason?: 'total_timeout' | 'agent_died';
  outputTruncated: boolean;
  /** Lines on the report channel that failed authentication (someone tried to forge a report). */
  forgedFrames: number;
  exitCode: number | null;
  wallMs: number;
  cpuMs: number;
  peakMemoryKiB: number;
  stdoutTail: string;
  stderrTail: string;
  /** Exactly how the container was run: runtime, image and limits. */
  spec: ContainerSpecRecord;
}

export interface ContainerSpecRecord {
  /** Short id of the container that ran this (validation containers are never reused). */
  containerId: string;
  image: string;
  runtime: string;
  user: string;
  networkMode: string;
  readOnlyRootfs: boolean;
  capDrop: string[];
  securityOpt: string[];
  limits: SandboxLimits;
  warm: boolean;
}

export interface Progress {
  phase: 'loading' | 'payload';
  completed: number;
  total: number;
}

export interface RunRequest {
  /** The task file's bytes as UTF-8 text. */
  source: string;
  /** Shown in tracebacks; sanitised by the caller. */
  fileName: string;
  payloads: unknown[];
  limits?: Partial<SandboxLimits>;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}
