/** How sandbox outcomes become user-readable findings (fail closed: a failed run always has an error). */
import { runFindings, runReport } from '../activities/validation-findings';
import { loadConfig } from '../src/config';
import type { RunOutcome } from '../sandbox';

const limits = loadConfig({}).sandbox.limits;
const base: RunOutcome = {
  ok: true,
  load: { status: 'ok', wallMs: 1 },
  payloads: [{ index: 0, status: 'ok', result: {}, wallMs: 1 }],
  forbidden: [],
  oom: false,
  killed: false,
  outputTruncated: false,
  forgedFrames: 0,
  exitCode: null,
  wallMs: 5,
  cpuMs: 1,
  peakMemoryKiB: 100,
  stdoutTail: '',
  stderrTail: '',
  spec: { containerId: 'c', image: 'i', runtime: 'runsc', user: '65534', networkMode: 'none', readOnlyRootfs: true, capDrop: ['ALL'], securityOpt: [], limits, warm: true },
};
const codes = (o: Partial<RunOutcome>) => runFindings({ ...base, ...o }, limits).map((f) => `${f.severity}:${f.code}`);

test('a clean run has no findings', () => {
  expect(codes({})).toEqual([]);
});

test('each failure kind is named', () => {
  expect(codes({ ok: false, forbidden: [{ event: 'os.fork', detail: 'spawns', payloadIndex: 0 }] })).toEqual(['error:forbidden_behaviour']);
  expect(codes({ ok: false, forgedFrames: 2 })).toEqual(['error:forged_report']);
  expect(codes({ ok: false, oom: true, exitCode: 137, payloads: [{ index: 0, status: 'error', error: { type: 'MemoryLimitExceeded', message: 'm' }, wallMs: 0 }] })).toEqual(['error:memory_limit']);
  expect(codes({ ok: false, killed: true, killReason: 'total_timeout', payloads: [{ index: 0, status: 'timeout', error: { type: 'Timeout', message: 't' }, wallMs: 0 }] })).toEqual(['error:timeout']);
  expect(codes({ ok: false, killed: true, killReason: 'agent_died', exitCode: 139, payloads: [{ index: 0, status: 'error', error: { type: 'SandboxDied', message: 'd' }, wallMs: 0 }] })).toEqual(['error:crashed']);
  expect(codes({ ok: false, payloads: [{ index: 0, status: 'error', error: { type: 'ValueError', message: 'v' }, wallMs: 0 }] })).toEqual(['error:handler_raised']);
  expect(codes({ ok: false, payloads: [{ index: 0, status: 'error', error: { type: 'NonJSONResult', message: 'n' }, wallMs: 0 }] })).toEqual(['error:result_not_json']);
  expect(codes({ ok: false, load: { status: 'error', wallMs: 0, error: { type: 'ContractError', message: 'no handler', code: 'handler_missing' } as never } })).toEqual(['error:handler_missing']);
  expect(codes({ outputTruncated: true })).toEqual(['warning:output_truncated']);
});

test('a failed run with nothing recognisable still gets an error finding', () => {
  expect(codes({ ok: false })).toEqual(['error:sandbox_run_failed']);
});

test('the report keeps the spec and caps output tails', () => {
  const r = runReport({ ...base, stdoutTail: 'x'.repeat(10000) });
  expect(r.stdout_tail).toHaveLength(4096);
  expect(r.spec).toMatchObject({ runtime: 'runsc', networkMode: 'none' });
  expect(r.payloads[0]).not.toHaveProperty('result');
});
