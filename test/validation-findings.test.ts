/** How sandbox outcomes become user-readable findings (fail closed: a failed run always has an error). */
import { runFindings, runReport } from '../activities/validation-findings';
import { loadConfig } from '../src/config';
import type { RunOutcome } from '../sandbox';

const limits = loadConfig({}).sandbox.limits;
const base: RunOutcome = {
  status: 'ok',
  load: { status: 'ok', wallMs: 1 },
  payloads: [{ index: 0, status: 'ok', result: {}, wallMs: 1 }],
  forbidden: [],
  syscalls: [],
  outputTruncated: false,
  forgedFrames: 0,
  wallMs: 5,
  cpuMs: 1,
  peakMemoryKiB: 100,
  stdoutTail: '',
  stderrTail: '',
  spec: {
    containerId: 'c',
    image: 'i',
    runtime: 'runsc',
    user: '0:0',
    networkMode: 'none',
    readOnlyRootfs: true,
    capDrop: ['ALL'],
    capAdd: ['KILL', 'SETGID', 'SETUID'],
    securityOpt: [],
    syscallMonitor: true,
    limits,
    warm: true,
  },
};
const codes = (o: Partial<RunOutcome>) => runFindings({ ...base, ...o }, limits).map((f) => `${f.severity}:${f.code}`);

test('a clean run has no findings', () => {
  expect(codes({})).toEqual([]);
});

test('each failure kind is named', () => {
  expect(codes({ status: 'forbidden', forbidden: [{ event: 'os.fork', detail: 'spawns', payloadIndex: 0 }] })).toEqual([
    'error:forbidden_behaviour',
  ]);
  expect(codes({ status: 'forbidden', forgedFrames: 2 })).toEqual(['error:forged_report']);
  const died = (type: string) => [{ index: 0, status: 'error' as const, error: { type, message: 'm' }, wallMs: 0 }];
  expect(
    codes({ status: 'memory_limit', exit: { code: 137, oomKilled: true, description: 'OOM' }, payloads: died('MemoryLimitExceeded') }),
  ).toEqual(['error:memory_limit']);
  expect(
    codes({
      status: 'timeout',
      exit: { code: 137, oomKilled: false, stoppedByHost: 'total_timeout', description: 't' },
      payloads: [{ index: 0, status: 'timeout', error: { type: 'Timeout', message: 't' }, wallMs: 0 }],
    }),
  ).toEqual(['error:timeout']);
  expect(
    codes({
      status: 'crashed',
      exit: { code: 137, oomKilled: false, description: 'PID 1 was killed by SIGKILL' },
      payloads: died('SandboxDied'),
    }),
  ).toEqual(['error:crashed']);
  expect(codes({ status: 'handler_error', payloads: died('ValueError') })).toEqual(['error:handler_raised']);
  expect(codes({ status: 'handler_error', payloads: died('NonJSONResult') })).toEqual(['error:result_not_json']);
  expect(codes({ status: 'handler_error', payloads: died('ResultUnsafeNumber') })).toEqual(['error:result_unsafe_number']);
  expect(
    codes({
      status: 'handler_error',
      load: { status: 'error', wallMs: 0, error: { type: 'ContractError', message: 'no handler', code: 'handler_missing' } as never },
    }),
  ).toEqual(['error:handler_missing']);
  expect(codes({ outputTruncated: true })).toEqual(['warning:output_truncated']);
});

test('a refused system call is named, once per call, with the payload the agent placed it in', () => {
  const socket = { syscall: 'socket', nr: 41, meaning: 'opens a network socket', pid: 2, tid: 3, payloadIndex: 1 };
  const o = {
    status: 'forbidden' as const,
    syscalls: [
      socket,
      { ...socket, syscall: 'ptrace', nr: 101, meaning: 'traces another process', payloadIndex: undefined, duringLoad: true as const },
    ],
    forbidden: [{ event: 'forbidden_syscall', detail: 'SIGSYS', payloadIndex: 1, pid: 2 }],
    payloads: died0('ForbiddenSyscall'),
  };
  const findings = runFindings({ ...base, ...o }, limits);
  expect(findings.map((f) => f.code)).toEqual(['forbidden_syscall', 'forbidden_syscall']);
  expect(findings[0].message).toMatch(
    /^socket with payload 1: opens a network socket; refused by the sandbox's seccomp filter \(process 2\)/,
  );
  expect(findings[1].message).toMatch(/^ptrace at import/);
  // Without gVisor's record (no monitor), the agent's SIGSYS note is the finding.
  expect(codes({ status: 'forbidden', forbidden: [{ event: 'forbidden_syscall', detail: 'SIGSYS', payloadIndex: 0, pid: 2 }] })).toEqual([
    'error:forbidden_syscall',
  ]);
  expect(runReport({ ...base, ...o }).syscalls[0]).toEqual({ syscall: 'socket', nr: 41, pid: 2, payloadIndex: 1 });
});

const died0 = (type: string) => [{ index: 0, status: 'error' as const, error: { type, message: 'm' }, wallMs: 0 }];

test('a failed run with nothing recognisable still gets an error finding', () => {
  expect(
    codes({ status: 'handler_error', payloads: [{ index: 0, status: 'error', error: { type: 'LoadFailed', message: 'x' }, wallMs: 0 }] }),
  ).toEqual(['error:sandbox_run_failed']);
});

test('the report keeps the spec and caps output tails', () => {
  const r = runReport({ ...base, stdoutTail: 'x'.repeat(10000) });
  expect(r.stdout_tail).toHaveLength(4096);
  expect(r.spec).toMatchObject({ runtime: 'runsc', networkMode: 'none' });
  expect(r.payloads[0]).not.toHaveProperty('result');
});
