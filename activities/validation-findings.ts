/**
 * Turns a sandbox run's outcome into findings a user can read. Codes: `timeout`, `memory_limit`,
 * `crashed`, `handler_raised`, `forbidden_behaviour`, `result_not_json`, `result_too_large`,
 * `forged_report`, the contract codes of the in-sandbox loader (`handler_missing`,
 * `handler_arity`, `import_failed`, ...), and `sandbox_run_failed` when nothing more precise fits
 * (fail closed: a run that did not succeed always yields at least one error finding).
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

  if (o.oom) add('memory_limit', memory);
  if (o.killReason === 'total_timeout') add('timeout', `the run exceeded its total wall time of ${limits.totalTimeoutMs} ms`);
  if (o.killReason === 'agent_died' && !o.oom) add('crashed', `the sandbox ended unexpectedly (exit status ${o.exitCode ?? 'unknown'})`);
  if (o.forgedFrames > 0) add('forged_report', `${o.forgedFrames} report line(s) failed authentication: the file tried to forge the sandbox's report`);
  for (const f of o.forbidden) {
    const where = f.payloadIndex === undefined ? 'at import' : `with payload ${f.payloadIndex}`;
    add('forbidden_behaviour', `${f.event} ${where}: ${f.detail}`);
  }

  const loadErr = o.load.error as (RunOutcome['load']['error'] & { code?: string }) | undefined;
  if (o.load.status === 'timeout') add('timeout', 'loading the module did not finish in time');
  else if (o.load.status === 'error') {
    if (loadErr?.type === 'MemoryLimitExceeded') add('memory_limit', memory);
    else add(isFindingCode(loadErr?.code) ? loadErr.code : 'import_failed', `loading the file failed: ${loadErr?.type ?? 'Error'}: ${loadErr?.message ?? ''}`);
  }

  for (const p of o.payloads) {
    const e = p.error;
    if (p.status === 'timeout' || e?.type === 'Timeout') {
      // Under a total-timeout kill the unfinished payloads are the same cause, already named.
      if (o.killReason !== 'total_timeout') add('timeout', `payload ${p.index} did not finish within ${limits.payloadTimeoutMs} ms`);
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
        // The container-level finding (memory, timeout, crash) already names why it died.
        if (!o.oom && !o.killReason) add('crashed', `payload ${p.index}: ${e.message}`);
        break;
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
      default:
        add('handler_raised', `payload ${p.index}: ${e?.type ?? 'Error'}: ${e?.message ?? ''}`);
    }
  }
  if (o.outputTruncated) add('output_truncated', `output beyond ${limits.outputCapBytes} bytes was dropped`, 'warning');
  if (!o.ok && !out.some((f) => f.severity === 'error')) add('sandbox_run_failed', 'the sandbox run did not succeed');
  return out;
}

const tail = (s: string): string => (s.length > TAIL_BYTES ? s.slice(-TAIL_BYTES) : s);

/** What is kept of a run: everything but the handler's results, with output tails capped. */
export function runReport(o: RunOutcome): SandboxRunReport {
  return {
    ok: o.ok,
    payloads: o.payloads.map((p) => ({
      index: p.index,
      status: p.status,
      wall_ms: p.wallMs,
      ...(p.error ? { error: { type: p.error.type, message: clip(p.error.message, 2000) } } : {}),
    })),
    forbidden: o.forbidden.slice(0, MAX_FINDINGS).map((f) => ({ ...f, detail: clip(f.detail) })),
    oom: o.oom,
    killed: o.killed,
    ...(o.killReason ? { kill_reason: o.killReason } : {}),
    exit_code: o.exitCode,
    forged_frames: o.forgedFrames,
    stdout_tail: tail(o.stdoutTail),
    stderr_tail: tail(o.stderrTail),
    spec: { ...o.spec },
  };
}
