/** The operator CLI, run as a user would: `npx taskflow ...`, real engine, JSON on stdout. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { FIXTURES } from './helpers/sandbox';

const BIN = path.join(__dirname, '..', 'bin', 'taskflow.js');

function taskflow(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, LOG_LEVEL: 'error', SANDBOX_POOL_SIZE: '0' },
    timeout: 90000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('sandbox-run prints the outcome and exits 0 when every payload succeeded', () => {
  const r = taskflow('sandbox-run', path.join(FIXTURES, 'good_async.py'), '--payload', '{"numbers":[2,3]}', '--payload', '{}');
  expect(r.code).toBe(0);
  const o = JSON.parse(r.out);
  expect(o.status).toBe('ok');
  expect(o.payloads[0].result).toMatchObject({ sum: 5 });
  expect(o.payloads).toHaveLength(2);
});

test('sandbox-run --cold exits 1 when the handler raises', () => {
  const r = taskflow('sandbox-run', path.join(FIXTURES, 'handler_raises.py'), '--cold');
  expect(r.code).toBe(1);
  expect(JSON.parse(r.out).payloads[0].error.type).toBe('ValueError');
});

test('sandbox-run shows a forbidden system call: the status, the refused call and its finding', () => {
  const r = taskflow('sandbox-run', path.join(FIXTURES, 'evade_socket.py'));
  expect(r.code).toBe(1);
  const o = JSON.parse(r.out);
  expect(o.status).toBe('forbidden');
  expect(o.syscalls).toEqual([expect.objectContaining({ syscall: 'socket', nr: 41, payloadIndex: 0 })]);
  expect(o.findings).toEqual([
    expect.objectContaining({
      code: 'forbidden_syscall',
      message: expect.stringMatching(/^socket with payload 0: opens a network socket/),
    }),
  ]);
});

test('sandbox-check prints findings and exits 1 on a rejecting one', () => {
  const r = taskflow('sandbox-check', path.join(FIXTURES, 'subprocess_shell.py'));
  expect(r.code).toBe(1);
  expect(JSON.parse(r.out).findings.map((f: { code: string }) => f.code)).toContain('forbidden_import');
});

test('bad arguments get a usage message and exit 2', () => {
  const r = taskflow('sandbox-run', path.join(FIXTURES, 'good_sync.py'), '--payload', '{not json');
  expect(r.code).toBe(2);
  expect(r.err).toMatch(/not valid JSON/);
});

test('each operator command parses its own arguments (util.parseArgs): unknown options and missing files exit 2', () => {
  expect(taskflow('sandbox-check')).toMatchObject({ code: 2, err: expect.stringContaining('missing FILE.py') });
  expect(taskflow('sandbox-run', path.join(FIXTURES, 'good_sync.py'), '--colt')).toMatchObject({
    code: 2,
    err: expect.stringContaining("Unknown option '--colt'"),
  });
  expect(taskflow('sandbox-image', 'extra')).toMatchObject({ code: 2, err: expect.stringContaining('unexpected argument: extra') });
  expect(taskflow('no-such-command')).toMatchObject({ code: 2, err: expect.stringContaining('unknown command "no-such-command"') });
});
