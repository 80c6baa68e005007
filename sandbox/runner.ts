/**
 * Drives one run or check on an agent container and turns whatever happened — a report, a
 * total timeout, a cancellation, an OOM kill, a dead agent — into a typed outcome.
 */
import { sha256Hex } from './hash';
import type { SandboxLimits } from './limits';
import { AgentExitedError, type AgentContainer, type ExitInfo, type Frame } from './agent-container';
import { SandboxCancelledError, SandboxInfraError } from './errors';
import type {
  CheckOutcome,
  Finding,
  ForbiddenEvent,
  PayloadOutcome,
  RunOutcome,
  RunRequest,
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
    const r: { frame?: Frame; stop?: Stop } = await Promise.race([
      work.then((frame) => ({ frame })),
      stopped.then((stop) => ({ stop })),
    ]);
    if (r.stop) await agent.kill();
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
  return {
    index: o.index,
    status: o.status as PayloadOutcome['status'],
    ...(o.status === 'ok' ? { result: o.result } : { error: o.error as PayloadOutcome['error'] }),
    wallMs: Number(o.wallMs) || 0,
  };
}

export async function runOnAgent(
  agent: AgentContainer,
  req: RunRequest,
  limits: SandboxLimits,
): Promise<RunOutcome> {
  const started = Date.now();
  const total = req.payloads.length;
  const seen: PayloadOutcome[] = [];
  let forbidden: ForbiddenEvent[] = [];
  let load: RunOutcome['load'] = { status: 'skipped', wallMs: 0 };
  req.onProgress?.({ phase: 'loading', completed: 0, total });
  agent.uses++;
  agent.lastUsedAt = Date.now();
  const work = agent.request(
    {
      type: 'run',
      source_b64: Buffer.from(req.source, 'utf8').toString('base64'),
      file_name: req.fileName,
      sha: sha256(req.source),
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

  const payloads: PayloadOutcome[] = [];
  const reported = frame && Array.isArray(frame.payloads) ? (frame.payloads as unknown[]).map(asPayload) : seen;
  for (let i = 0; i < total; i++) {
    const p = reported.find((x) => x?.index === i);
    if (p) payloads.push(p);
    else {
      const why = exit?.oom
        ? { type: 'MemoryLimitExceeded', message: `the sandbox was killed for exceeding ${limits.memoryMiB} MiB` }
        : stop?.kind === 'timeout'
          ? { type: 'Timeout', message: `the run exceeded its total wall time of ${limits.totalTimeoutMs} ms` }
          : { type: 'SandboxDied', message: `the sandbox ended before this payload finished (status ${exit?.exitCode ?? 'unknown'})` };
      payloads.push({ index: i, status: stop?.kind === 'timeout' ? 'timeout' : 'error', error: why, wallMs: 0 });
    }
  }
  if (frame) load = frame.load as RunOutcome['load'];
  else if (load.status === 'skipped' && exit?.oom) {
    load = { status: 'error', wallMs: 0, error: { type: 'MemoryLimitExceeded', message: `loading exceeded ${limits.memoryMiB} MiB` } };
  } else if (load.status === 'skipped' && stop?.kind === 'timeout') {
    load = { status: 'timeout', wallMs: limits.totalTimeoutMs, error: { type: 'Timeout', message: 'loading did not finish in time' } };
  }
  if (frame && Array.isArray(frame.forbidden)) forbidden = frame.forbidden as ForbiddenEvent[];
  const killReason: RunOutcome['killReason'] = stop
    ? stop.kind === 'timeout'
      ? 'total_timeout'
      : exit?.oom
        ? undefined
        : 'agent_died'
    : undefined;
  const oom = exit?.oom ?? false;
  const killed = Boolean(stop) && !oom;
  return {
    ok: load.status === 'ok' && payloads.every((p) => p.status === 'ok') && !oom && !killed && forbidden.length === 0,
    load,
    payloads,
    forbidden,
    oom,
    killed,
    ...(killReason ? { killReason } : {}),
    outputTruncated: Boolean(frame?.outputTruncated),
    forgedFrames: agent.forgedFrames,
    exitCode: exit?.exitCode ?? null,
    wallMs: Date.now() - started,
    cpuMs: Number(frame?.cpuMs) || 0,
    peakMemoryKiB: Number(frame?.peakMemoryKiB) || 0,
    stdoutTail: typeof frame?.stdoutTail === 'string' ? frame.stdoutTail : '',
    stderrTail: typeof frame?.stderrTail === 'string' ? frame.stderrTail : '',
    spec: agent.spec,
  };
}

/** Whether a container that just ran may serve another run of the same file version. */
export function reusable(agent: AgentContainer, outcome: RunOutcome): boolean {
  return agent.isAlive && !outcome.killed && !outcome.oom && outcome.forbidden.length === 0 && agent.forgedFrames === 0;
}

export interface CheckOptions {
  maxBytes: number;
  timeoutMs: number;
  policy?: Record<string, 'error' | 'warning' | 'off'>;
  signal?: AbortSignal;
}

export async function checkOnAgent(
  agent: AgentContainer,
  source: Buffer,
  fileName: string,
  o: CheckOptions,
): Promise<CheckOutcome> {
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
    wallMs: Date.now() - started,
  });
  if (!frame) {
    const exit = stop?.kind === 'exited' ? stop.exit : await agent.waitExit();
    if (exit.oom) return fail('check_memory_limit', 'parsing the file exceeded the sandbox memory limit');
    if (stop?.kind === 'timeout') return fail('check_timeout', 'parsing the file did not finish in time');
    throw new SandboxInfraError(`static check container died (status ${exit.exitCode}): ${agent.agentLog.slice(-300)}`);
  }
  if (typeof frame.error === 'string') {
    return frame.error.includes('timed out')
      ? fail('check_timeout', `parsing the file did not finish within ${o.timeoutMs} ms`)
      : fail('checker_failed', 'the static checker could not analyse this file');
  }
  const report = (frame.report ?? {}) as { findings?: Finding[]; test_payloads?: unknown[] | null };
  const findings = Array.isArray(report.findings) ? report.findings : [];
  return {
    ok: !findings.some((f) => f.severity === 'error'),
    findings,
    ...(Array.isArray(report.test_payloads) ? { testPayloads: report.test_payloads } : {}),
    wallMs: Date.now() - started,
  };
}
