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
  /** The file's PEP 723 `script` block, when it has one and it is well formed. */
  script?: ScriptMetadata;
  /** Top-level modules the file imports that the sandbox's standard library does not provide. */
  externalImports: ExternalImport[];
  wallMs: number;
}

/** A PEP 723 `# /// script` block as the checker read it (TOML, never executed). */
export interface ScriptMetadata {
  /** PEP 508 requirement strings, each already parsed by `packaging` in the checker. */
  dependencies: string[];
  /** `requires-python`, already checked against the sandbox's interpreter. */
  requiresPython?: string;
  /** 1-based line of the block's `# /// script`. */
  line: number;
}

export interface ExternalImport {
  /** The top-level name, e.g. `requests` for `from requests.adapters import X`. */
  module: string;
  /** 1-based line and column (characters) of its first import, its first unguarded one if any. */
  line: number;
  col: number;
  /**
   * The file may load without it: every import of it may not run at load (an if/else branch, a loop,
   * a function's body, `if TYPE_CHECKING:`) or is inside `try:` with an `except ImportError` /
   * `ModuleNotFoundError` (or a bare / Exception) handler.
   */
  guarded: boolean;
}

/**
 * A handler's third-party packages: a directory of unpacked wheels on the host, content-addressed by
 * its lock, mounted read-only into the container and appended (after the stdlib) to the child's path.
 */
export interface DependencyLayer {
  /** The lock's sha256 (64 hex digits, checked): containers are reused only for the same layer. */
  id: string;
  /**
   * Absolute host path of the unpacked packages (a `site-packages` style directory; `.pth` files are
   * not processed). It must exist when the run starts and hold no symbolic link (else
   * `SandboxInfraError`); it appears at
   * `LAYER_PATH` (/deps), so byte-compile it for that path (`compileall -d /deps`, unchecked-hash:
   * the mount is read-only, so Python cannot write its own `.pyc` there).
   */
  hostDir: string;
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

/** A forbidden action the in-sandbox audit hook saw (and blocked), or the agent's note that the
 * handler's process was ended by SIGSYS (`forbidden_syscall`). */
export interface ForbiddenEvent {
  event: string;
  detail: string;
  payloadIndex?: number;
  /** `forbidden_syscall` notes: the ended process (in the sandbox's pid namespace). */
  pid?: number;
}

/**
 * A system call gVisor's seccomp layer refused (the container-wide profile or the child runner's own
 * filter), as the host read it from gVisor's own log — seen whether or not Python saw anything.
 */
export interface SyscallEvent {
  /** Its name (x86_64), e.g. `socket`; `syscall_<nr>` for one the table does not list. */
  syscall: string;
  nr: number;
  /** What attempting it means, for a person ("opens a network socket"). */
  meaning: string;
  /** Process (thread group) and thread inside the sandbox; PID 1 is the agent. */
  pid: number;
  tid: number;
  /** The payload during which it happened, when known (the agent saw that process end with SIGSYS). */
  payloadIndex?: number;
  /** Known to have happened while the module was loading. */
  duringLoad?: true;
}

/**
 * How a run ended: exactly one status, decided once by the runner (precedence in this order):
 * - `forbidden`: a system call was refused (`syscalls`), the audit hook saw a forbidden action
 *   (`forbidden`), or lines on the report channel failed authentication (`forgedFrames`);
 * - `memory_limit`: the engine (or the kernel's record) says the memory cgroup killed the container,
 *   or the handler's process in a living container (never inferred from an exit status alone);
 * - `timeout`: loading or a payload ran past its wall time, or the run past its total;
 * - `crashed`: the sandbox (PID 1 killed, the agent died) or the handler's process ended under the
 *   handler without any cause above — the handler's doing, so never retried as infrastructure;
 * - `handler_error`: the module failed to load or the contract, or the handler raised or returned
 *   something unusable;
 * - `ok`: loaded, and every payload returned a JSON result.
 * Cancellation and infrastructure failures are not outcomes: they throw `SandboxCancelledError` and
 * `SandboxInfraError`.
 */
export const RUN_STATUSES = ['ok', 'handler_error', 'timeout', 'memory_limit', 'forbidden', 'crashed'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** Why the host itself stopped a container. */
export type HostStopReason = 'total_timeout' | 'cancelled' | 'forbidden_syscall' | 'oversized_report' | 'teardown';

/** How the container ended, when it ended during the run. */
export interface ContainerExit {
  code: number | null;
  /** The memory cgroup killed it: `State.OOMKilled`, or (when Docker missed it) the kernel's OOM record. */
  oomKilled: boolean;
  /** Set when the host stopped it, and why. */
  stoppedByHost?: HostStopReason;
  /** For a person: "PID 1 was killed by SIGKILL", "exited with status 1", ... */
  description: string;
}

export interface RunOutcome {
  status: RunStatus;
  /**
   * Loading the module and checking the handler contract. `memoryKiB`: how far loading raised the
   * process's peak memory (its imports, a dependency layer's libraries), when this run loaded it.
   */
  load: { status: 'ok' | 'error' | 'timeout' | 'skipped'; error?: HandlerError; wallMs: number; memoryKiB?: number };
  payloads: PayloadOutcome[];
  forbidden: ForbiddenEvent[];
  syscalls: SyscallEvent[];
  /** Set when the container ended during the run. */
  exit?: ContainerExit;
  outputTruncated: boolean;
  /** Lines on the report channel that failed authentication (someone tried to forge a report). */
  forgedFrames: number;
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
  /** The container's user: root, which the agent leaves at once (sandbox/spec.ts, SANDBOX_USER). */
  user: string;
  networkMode: string;
  readOnlyRootfs: boolean;
  capDrop: string[];
  /** The only capabilities: the agent's, to start its children under another uid and kill them. */
  capAdd: string[];
  /** `no-new-privileges` and the seccomp profile's name (the profile itself: sandbox/seccomp-profile.ts). */
  securityOpt: string[];
  /** Whether gVisor's record of refused system calls was read for this container. */
  syscallMonitor: boolean;
  limits: SandboxLimits;
  warm: boolean;
  /** The dependency layer's id, when one was mounted (read-only, at /deps). */
  layer?: string;
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
  /** The file's dependency layer, when it declares dependencies. */
  layer?: DependencyLayer;
  limits?: Partial<SandboxLimits>;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}
