/**
 * Turns a sandbox run's outcome into findings a user can read, switching on the run's one status
 * (decided in sandbox/runner.ts). Codes: `forbidden_syscall` (each system call gVisor refused, by
 * name), `forbidden_behaviour` (what the audit hook saw), `forged_report`, `memory_limit`,
 * `timeout`, `crashed`, `handler_raised`, `result_not_json`, `result_too_large`, `result_too_deep`,
 * `result_unsafe_number`, the contract codes
 * of the in-sandbox loader (`handler_missing`, `handler_arity`, `import_failed`, ...), and
 * `sandbox_run_failed` when nothing more precise fits (fail closed: a run that did not succeed
 * always yields at least one error finding).
 */
import type { SandboxLimits } from '../src/config';
import type { RunOutcome } from '../sandbox';
import { isFindingCode, type FindingCode } from '../domain/findings';
import type { SandboxRunReport, ValidationFinding } from '../domain/validation';

const MAX_FINDINGS = 50;
const MAX_MESSAGE = 500;
const TAIL_BYTES = 4096;

const clip = (s: string, n = MAX_MESSAGE): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

export function runFindings(o: RunOutcome, limits: SandboxLimits): ValidationFinding[] {
  const out: ValidationFinding[] = [];
  const seen = new Set<string>();
  const add = (code: FindingCode, message: string, severity: ValidationFinding['severity'] = 'error') => {
    const key = `${code}\0${message}`;
    if (seen.has(key) || out.length >= MAX_FINDINGS) return;
    seen.add(key);
    out.push({ code, severity, message: clip(message) });
  };
  const memory = `the sandbox was killed for exceeding its memory limit of ${limits.memoryMiB} MiB`;
  // The agent sends null (not absent) for "while loading".
  const where = (i: number | null | undefined) => (i == null ? 'at import' : `with payload ${i}`);
  const totalTimeout = o.exit?.stoppedByHost === 'total_timeout';

  switch (o.status) {
    case 'forbidden':
      for (const c of o.syscalls) {
        const who = c.pid === 1 ? 'the sandbox agent (PID 1)' : `process ${c.pid}`;
        const at = c.duringLoad ? ' at import' : c.payloadIndex !== undefined ? ` with payload ${c.payloadIndex}` : '';
        add('forbidden_syscall', `${c.syscall}${at}: ${c.meaning}; refused by the sandbox's seccomp filter (${who})`);
      }
      if (o.forgedFrames > 0)
        add('forged_report', `${o.forgedFrames} report line(s) failed authentication: the file tried to forge the sandbox's report`);
      break;
    case 'memory_limit':
      add('memory_limit', memory);
      break;
    case 'timeout':
      if (totalTimeout) add('timeout', `the run exceeded its total wall time of ${limits.totalTimeoutMs} ms`);
      break;
    case 'crashed':
      if (o.exit) add('crashed', `the sandbox ended under the handler: ${o.exit.description}`);
      break;
    case 'handler_error':
    case 'ok':
      break;
  }
  for (const f of o.forbidden) {
    // The agent's note of a SIGSYS ending adds nothing when gVisor named the call itself.
    if (f.event === 'forbidden_syscall') {
      if (o.syscalls.length === 0) add('forbidden_syscall', `${where(f.payloadIndex)}: ${f.detail}`);
      continue;
    }
    add('forbidden_behaviour', `${f.event} ${where(f.payloadIndex)}: ${f.detail}`);
  }

  const loadErr = o.load.error as (RunOutcome['load']['error'] & { code?: string }) | undefined;
  if (o.load.status === 'timeout') add('timeout', 'loading the module did not finish in time');
  else if (o.load.status === 'error') {
    if (loadErr?.type === 'MemoryLimitExceeded') add('memory_limit', memory);
    else
      add(
        isFindingCode(loadErr?.code) ? loadErr.code : 'import_failed',
        `loading the file failed: ${loadErr?.type ?? 'Error'}: ${loadErr?.message ?? ''}`,
      );
  }

  for (const p of o.payloads) {
    const e = p.error;
    if (p.status === 'timeout' || e?.type === 'Timeout') {
      // Under a total-timeout kill the unfinished payloads are the same cause, already named.
      if (!totalTimeout) add('timeout', `payload ${p.index} did not finish within ${limits.payloadTimeoutMs} ms`);
      continue;
    }
    if (p.status !== 'error') continue;
    switch (e?.type) {
      case 'MemoryLimitExceeded':
        add('memory_limit', memory);
        break;
      case 'LoadFailed':
        break; // already reported by the load finding
      case 'SandboxDied':
      case 'ForbiddenSyscall':
        break; // the run-level finding (forbidden, memory, timeout, crash) already names why it ended
      case 'ChildExited':
        add('crashed', `payload ${p.index}: ${e.message}`);
        break;
      case 'NonJSONResult':
        add('result_not_json', `payload ${p.index}: ${e.message}`);
        break;
      case 'ResultTooLarge':
        add('result_too_large', `payload ${p.index}: ${e.message}`);
        break;
      case 'ResultTooDeep':
        add('result_too_deep', `payload ${p.index}: ${e.message}`);
        break;
      case 'ResultUnsafeNumber':
        add('result_unsafe_number', `payload ${p.index}: ${e.message}`);
        break;
      default:
        add('handler_raised', `payload ${p.index}: ${e?.type ?? 'Error'}: ${e?.message ?? ''}`);
    }
  }
  if (o.outputTruncated) add('output_truncated', `output beyond ${limits.outputCapBytes} bytes was dropped`, 'warning');
  if (o.status !== 'ok' && !out.some((f) => f.severity === 'error'))
    add('sandbox_run_failed', `the sandbox run did not succeed (${o.status})`);
  return out;
}

const tail = (s: string): string => (s.length > TAIL_BYTES ? s.slice(-TAIL_BYTES) : s);

/** What is kept of a run: everything but the handler's results, with output tails capped. */
export function runReport(o: RunOutcome): SandboxRunReport {
  return {
    status: o.status,
    payloads: o.payloads.map((p) => ({
      index: p.index,
      status: p.status,
      wall_ms: p.wallMs,
      ...(p.error ? { error: { type: p.error.type, message: clip(p.error.message, 2000) } } : {}),
    })),
    forbidden: o.forbidden.slice(0, MAX_FINDINGS).map((f) => ({ ...f, detail: clip(f.detail) })),
    syscalls: o.syscalls.slice(0, MAX_FINDINGS).map((c) => ({
      syscall: c.syscall,
      nr: c.nr,
      pid: c.pid,
      ...(c.payloadIndex !== undefined ? { payloadIndex: c.payloadIndex } : {}),
      ...(c.duringLoad ? { duringLoad: true } : {}),
    })),
    ...(o.exit
      ? {
          exit: {
            code: o.exit.code,
            oom_killed: o.exit.oomKilled,
            ...(o.exit.stoppedByHost ? { stopped_by_host: o.exit.stoppedByHost } : {}),
            description: o.exit.description,
          },
        }
      : {}),
    forged_frames: o.forgedFrames,
    stdout_tail: tail(o.stdoutTail),
    stderr_tail: tail(o.stderrTail),
    spec: { ...o.spec },
  };
}
