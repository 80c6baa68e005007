/**
 * Drives one run or check on an agent container and turns whatever happened — a report, a
 * total timeout, a cancellation, an OOM kill, a refused system call, a dead agent — into a typed
 * outcome with exactly one status, decided here and nowhere else (`decideStatus`).
 */
import { parseExactJson, type ExactJson } from './exact-json';
import { sha256Hex } from './hash';
import type { SandboxLimits } from './limits';
import { AgentExitedError, type AgentContainer, type ExitInfo, type Frame } from './agent-container';
import { SandboxCancelledError, SandboxInfraError } from './errors';
import type {
  CheckOutcome,
  ContainerExit,
  ExternalImport,
  Finding,
  ForbiddenEvent,
  HandlerError,
  PayloadOutcome,
  RunOutcome,
  RunRequest,
  RunStatus,
  ScriptMetadata,
  SyscallEvent,
} from './types';

export const sha256 = sha256Hex;

type Stop = { kind: 'timeout' } | { kind: 'cancelled' } | { kind: 'exited'; exit: ExitInfo };

/**
 * Runs `work` against the agent, but kills the container at once when the total wall time
 * runs out or `signal` aborts. Returns the work's frame or why it stopped.
 */
async function guarded(
  agent: AgentContainer,
  work: Promise<Frame>,
  totalTimeoutMs: number,
  signal?: AbortSignal,
): Promise<{ frame?: Frame; stop?: Stop }> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<Stop>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'timeout' }), totalTimeoutMs);
    if (signal) {
      onAbort = () => resolve({ kind: 'cancelled' });
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  try {
    const r: { frame?: Frame; stop?: Stop } = await Promise.race([work.then((frame) => ({ frame })), stopped.then((stop) => ({ stop }))]);
    if (r.stop) await agent.kill(r.stop.kind === 'timeout' ? 'total_timeout' : 'cancelled');
    return r;
  } catch (err) {
    if (err instanceof AgentExitedError) return { stop: { kind: 'exited', exit: err.exit } };
    throw err;
  } finally {
    clearTimeout(timer);
    if (signal && onAbort) signal.removeEventListener('abort', onAbort);
  }
}

function asPayload(p: unknown): PayloadOutcome | undefined {
  if (!p || typeof p !== 'object') return undefined;
  const o = p as Record<string, unknown>;
  if (typeof o.index !== 'number' || !['ok', 'error', 'timeout'].includes(o.status as string)) return undefined;
  const wallMs = Number(o.wallMs) || 0;
  if (o.status !== 'ok')
    return { index: o.index, status: o.status as PayloadOutcome['status'], error: o.error as PayloadOutcome['error'], wallMs };
  // The agent refuses unsafe numbers already; this side does not rely on it.
  let parsed: ExactJson | undefined;
  try {
    parsed = typeof o.resultJson === 'string' ? parseExactJson(o.resultJson) : undefined;
  } catch {
    parsed = undefined;
  }
  if (parsed?.ok) return { index: o.index, status: 'ok', result: parsed.value, wallMs };
  const error = parsed
    ? { type: 'ResultUnsafeNumber', message: `result holds ${parsed.number.slice(0, 40)}, which JavaScript cannot hold exactly` }
    : { type: 'ProtocolError', message: 'the sandbox reported a result that is not JSON text' };
  return { index: o.index, status: 'error', error, wallMs };
}

/**
 * A keyed container whose handler's process reached this share of the memory limit is retired
 * after the run: what it leaves behind (Python keeps freed memory; gVisor too) would make the next
 * run of the same file and payload end differently. What loading the module took is left out: it
 * is the same in every container of this version, and under gVisor it includes the file-backed
 * pages of a dependency layer's native libraries (numpy's alone ~50 MiB), which would otherwise
 * retire the container after every call.
 */
export const NEAR_MEMORY_LIMIT = 0.5;

interface Facts {
  stop?: Stop;
  exit?: ContainerExit;
  load: RunOutcome['load'];
  payloads: PayloadOutcome[];
  forbidden: ForbiddenEvent[];
  syscalls: SyscallEvent[];
  forgedFrames: number;
  /** The container lives, but its memory cgroup killed the handler's process (see handlerOomKill). */
  handlerOomKilled: boolean;
}

/** The one place a run's status is decided; precedence as documented on `RunStatus`. */
function decideStatus(f: Facts): RunStatus {
  if (f.syscalls.length > 0 || f.forbidden.length > 0 || f.forgedFrames > 0) return 'forbidden';
  if (f.exit?.oomKilled || f.handlerOomKilled) return 'memory_limit';
  if (f.stop?.kind === 'timeout' || f.load.status === 'timeout' || f.payloads.some((p) => p.status === 'timeout')) return 'timeout';
  // The container ended under the handler (PID 1 killed, the agent died), or the handler's process did.
  if (f.exit || f.load.error?.type === 'ChildExited' || f.payloads.some((p) => p.error?.type === 'ChildExited')) return 'crashed';
  if (f.load.status !== 'ok' || f.payloads.some((p) => p.status !== 'ok')) return 'handler_error';
  return 'ok';
}

/**
 * When the agent saw the process a refusal came from end with SIGSYS, its note says during which
 * payload (or while loading). gVisor's line alone does not say; the pipe and the report channel
 * are not ordered with respect to each other, so arrival times would not either.
 */
function placeRefusals(syscalls: SyscallEvent[], forbidden: ForbiddenEvent[]): void {
  for (const c of syscalls) {
    const note = forbidden.find((f) => f.event === 'forbidden_syscall' && f.pid === c.pid);
    if (!note) continue;
    if (note.payloadIndex === undefined || note.payloadIndex === null) c.duringLoad = true;
    else c.payloadIndex = note.payloadIndex;
  }
}

/** Why a payload (or the load) has no report of its own: the container ended first. */
function unreported(
  limits: SandboxLimits,
  stop: Stop | undefined,
  exit: ContainerExit | undefined,
  syscalls: SyscallEvent[],
): HandlerError {
  if (syscalls.length > 0) {
    const s = syscalls[0];
    return {
      type: 'ForbiddenSyscall',
      message: `the sandbox was stopped: the handler made a forbidden system call, ${s.syscall} (${s.meaning})`,
    };
  }
  if (exit?.oomKilled) return { type: 'MemoryLimitExceeded', message: `the sandbox was killed for exceeding ${limits.memoryMiB} MiB` };
  if (stop?.kind === 'timeout') return { type: 'Timeout', message: `the run exceeded its total wall time of ${limits.totalTimeoutMs} ms` };
  return { type: 'SandboxDied', message: `the sandbox ended before this finished: ${exit?.description ?? 'no report'}` };
}

/**
 * The handler's process ended under a call (ChildExited) while the container lives on, and the kernel
 * says the container's memory cgroup OOM-killed a process: under runsc's systrap platform that is how
 * a handler past the memory limit ends (gVisor reports the process as exited with status 1). Those
 * errors are then the memory limit's, said as such. Never inferred from the status alone.
 */
function handlerOomKill(
  agent: AgentContainer,
  limits: SandboxLimits,
  exit: ContainerExit | undefined,
  load: RunOutcome['load'],
  payloads: PayloadOutcome[],
): boolean {
  const ended = (e?: HandlerError) => e?.type === 'ChildExited';
  if (exit || !(ended(load.error) || payloads.some((p) => ended(p.error))) || !agent.memoryCgroupKilled()) return false;
  const error: HandlerError = {
    type: 'MemoryLimitExceeded',
    message: `the memory cgroup killed the handler's process for exceeding ${limits.memoryMiB} MiB`,
  };
  if (ended(load.error)) load.error = error;
  for (const p of payloads) if (ended(p.error)) p.error = error;
  return true;
}

export async function runOnAgent(agent: AgentContainer, req: RunRequest, limits: SandboxLimits): Promise<RunOutcome> {
  // A host bug, never the handler's: it would run against packages its version was not validated with.
  if (agent.layer?.id !== req.layer?.id) throw new Error('runOnAgent: the container has another dependency layer than the run');
  const started = Date.now();
  const total = req.payloads.length;
  const seen: PayloadOutcome[] = [];
  let forbidden: ForbiddenEvent[] = [];
  const sha = sha256(req.source);
  // The agent reports no load when its child still holds this version (keyed reuse).
  let load: RunOutcome['load'] = agent.loadedSha === sha ? { status: 'ok', wallMs: 0 } : { status: 'skipped', wallMs: 0 };
  req.onProgress?.({ phase: 'loading', completed: 0, total });
  agent.uses++;
  agent.lastUsedAt = Date.now();
  const work = agent.request(
    {
      type: 'run',
      source_b64: Buffer.from(req.source, 'utf8').toString('base64'),
      file_name: req.fileName,
      sha,
      payloads: req.payloads,
      payload_timeout_ms: limits.payloadTimeoutMs,
      result_cap: limits.resultCapBytes,
      result_max_depth: limits.jsonMaxDepth,
      output_cap: limits.outputCapBytes,
    },
    'run_done',
    (f) => {
      if (Array.isArray(f.forbidden)) forbidden = f.forbidden as ForbiddenEvent[];
      if (f.type === 'loaded') load = f.load as RunOutcome['load'];
      if (f.type === 'progress') {
        const p = asPayload(f.payload);
        if (p) seen.push(p);
        req.onProgress?.({ phase: 'payload', completed: seen.length, total });
      }
    },
  );
  const { frame, stop } = await guarded(agent, work, limits.totalTimeoutMs, req.signal);
  if (stop?.kind === 'cancelled') throw new SandboxCancelledError();
  const exit = stop ? (stop.kind === 'exited' ? stop.exit : await agent.waitExit()) : undefined;
  // After the report (or the end): gVisor wrote each refusal before the refused call returned.
  const syscalls = agent.refusedSyscalls();

  const payloads: PayloadOutcome[] = [];
  const reported = frame && Array.isArray(frame.payloads) ? (frame.payloads as unknown[]).map(asPayload) : seen;
  for (let i = 0; i < total; i++) {
    const p = reported.find((x) => x?.index === i);
    if (p) payloads.push(p);
    else {
      const why = unreported(limits, stop, exit, syscalls);
      payloads.push({ index: i, status: why.type === 'Timeout' ? 'timeout' : 'error', error: why, wallMs: 0 });
    }
  }
  if (frame) load = frame.load as RunOutcome['load'];
  else if (load.status === 'skipped') {
    const why = unreported(limits, stop, exit, syscalls);
    load =
      why.type === 'Timeout'
        ? { status: 'timeout', wallMs: limits.totalTimeoutMs, error: why }
        : { status: 'error', wallMs: 0, error: why };
  }
  if (load.error?.type === 'SandboxSetupFailed') throw new SandboxInfraError(`sandbox set-up failed: ${load.error.message}`);
  if (frame && Array.isArray(frame.forbidden)) forbidden = frame.forbidden as ForbiddenEvent[];
  placeRefusals(syscalls, forbidden);
  agent.loadedSha = load.status === 'ok' ? sha : undefined;
  if (load.status !== 'ok') agent.loadMemoryKiB = 0;
  else if (typeof load.memoryKiB === 'number' && load.memoryKiB >= 0) agent.loadMemoryKiB = load.memoryKiB;
  const forgedFrames = agent.forgedFrames;
  const handlerOomKilled = handlerOomKill(agent, limits, exit, load, payloads);
  return {
    status: decideStatus({ stop, exit, load, payloads, forbidden, syscalls, forgedFrames, handlerOomKilled }),
    load,
    payloads,
    forbidden,
    syscalls,
    ...(exit ? { exit } : {}),
    outputTruncated: Boolean(frame?.outputTruncated),
    forgedFrames,
    wallMs: Date.now() - started,
    cpuMs: Number(frame?.cpuMs) || 0,
    peakMemoryKiB: Number(frame?.peakMemoryKiB) || 0,
    stdoutTail: typeof frame?.stdoutTail === 'string' ? frame.stdoutTail : '',
    stderrTail: typeof frame?.stderrTail === 'string' ? frame.stderrTail : '',
    spec: agent.spec,
  };
}

/** The handler's process came near the memory limit, what loading took aside (see NEAR_MEMORY_LIMIT). */
export function nearMemoryLimit(o: RunOutcome, loadMemoryKiB = 0): boolean {
  const load = Math.min(Math.max(0, loadMemoryKiB), o.peakMemoryKiB); // the child's own figure: never more than its peak
  return o.peakMemoryKiB - load >= NEAR_MEMORY_LIMIT * o.spec.limits.memoryMiB * 1024;
}

/** Whether a container that just ran may serve another run of the same file version. */
export function reusable(agent: AgentContainer, o: RunOutcome): boolean {
  const clean = o.status === 'ok' || o.status === 'handler_error' || o.status === 'timeout';
  return agent.isAlive && clean && !nearMemoryLimit(o, agent.loadMemoryKiB);
}

export interface CheckOptions {
  maxBytes: number;
  timeoutMs: number;
  policy?: Record<string, 'error' | 'warning' | 'off'>;
  signal?: AbortSignal;
}

export async function checkOnAgent(agent: AgentContainer, source: Buffer, fileName: string, o: CheckOptions): Promise<CheckOutcome> {
  const started = Date.now();
  agent.uses++;
  const work = agent.request(
    {
      type: 'check',
      source_b64: source.toString('base64'),
      file_name: fileName,
      max_bytes: o.maxBytes,
      timeout_ms: o.timeoutMs,
      ...(o.policy ? { policy: o.policy } : {}),
    },
    'check_done',
  );
  // The checker has its own timeout inside; the outer one covers a wedged container.
  const { frame, stop } = await guarded(agent, work, o.timeoutMs + 10000, o.signal);
  if (stop?.kind === 'cancelled') throw new SandboxCancelledError();
  const fail = (code: string, message: string): CheckOutcome => ({
    ok: false,
    findings: [{ code, severity: 'error', message }],
    externalImports: [],
    wallMs: Date.now() - started,
  });
  const refused = agent.refusedSyscalls();
  if (refused.length > 0) {
    // Parsing makes no such calls: whatever made it, this check's verdict cannot be trusted.
    return fail(
      'forbidden_syscall',
      `a forbidden system call was made during the static check: ${refused[0].syscall} (${refused[0].meaning})`,
    );
  }
  if (!frame) {
    const exit = stop?.kind === 'exited' ? stop.exit : await agent.waitExit();
    if (exit.oomKilled) return fail('check_memory_limit', 'parsing the file exceeded the sandbox memory limit');
    if (stop?.kind === 'timeout') return fail('check_timeout', 'parsing the file did not finish in time');
    throw new SandboxInfraError(`static check container died (${exit.description}): ${agent.agentLog.slice(-300)}`);
  }
  if (typeof frame.error === 'string') {
    return frame.error.includes('timed out')
      ? fail('check_timeout', `parsing the file did not finish within ${o.timeoutMs} ms`)
      : fail('checker_failed', 'the static checker could not analyse this file');
  }
  const report = (frame.report ?? {}) as {
    findings?: Finding[];
    test_payloads?: unknown[] | null;
    script?: unknown;
    external_imports?: unknown;
  };
  const findings = Array.isArray(report.findings) ? report.findings : [];
  const script = asScript(report.script);
  return {
    ok: !findings.some((f) => f.severity === 'error'),
    findings,
    ...(Array.isArray(report.test_payloads) ? { testPayloads: report.test_payloads } : {}),
    ...(script ? { script } : {}),
    externalImports: asExternalImports(report.external_imports),
    wallMs: Date.now() - started,
  };
}

/** The checker's `script` (snake_case JSON) as the host's ScriptMetadata; anything malformed is dropped. */
function asScript(v: unknown): ScriptMetadata | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (!Array.isArray(o.dependencies) || !o.dependencies.every((d) => typeof d === 'string') || typeof o.line !== 'number') {
    return undefined;
  }
  return {
    dependencies: o.dependencies as string[],
    ...(typeof o.requires_python === 'string' ? { requiresPython: o.requires_python } : {}),
    line: o.line,
  };
}

function asExternalImports(v: unknown): ExternalImport[] {
  if (!Array.isArray(v)) return [];
  return v.flatMap((e: unknown): ExternalImport[] => {
    const o = (e ?? {}) as Record<string, unknown>;
    return typeof o.module === 'string' && typeof o.line === 'number' && typeof o.col === 'number' && typeof o.guarded === 'boolean'
      ? [{ module: o.module, line: o.line, col: o.col, guarded: o.guarded }]
      : [];
  });
}
