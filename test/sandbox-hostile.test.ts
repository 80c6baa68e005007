/**
 * Hostile task files against the real sandbox (Docker + runsc). Each test asserts two things:
 * the host is unharmed, and the outcome names the cause.
 */
import fs from 'node:fs';
import Docker from 'dockerode';
import net from 'node:net';
import os from 'node:os';
import type { RunOutcome, Sandbox } from '../sandbox';
import { parseExactJson } from '../sandbox/exact-json';
import { fixture, startSandbox, testConfig } from './helpers/sandbox';

const config = testConfig();
let sandbox: Sandbox;

beforeAll(async () => {
  sandbox = await startSandbox(config, { validationPool: true });
}, 120000);

afterAll(async () => {
  await sandbox?.close();
});

function run(file: string, payloads: unknown[] = [{}]): Promise<RunOutcome> {
  return sandbox.validate({ source: fixture(file), fileName: file, payloads });
}

/** Command lines of the host's processes. */
const hostProcesses = (): string[] =>
  fs
    .readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      } catch {
        return ''; // gone meanwhile
      }
    });
/** Host processes that belong to no live container (zombies waiting for init aside). */
async function hostOwnProcesses(): Promise<number> {
  const live = (await new Docker({ socketPath: config.sandbox.dockerSocket }).listContainers()).map((c) => c.Id.slice(0, 12));
  return hostProcesses().filter((cmd) => cmd !== '' && !live.some((id) => cmd.includes(id))).length;
}

const forbiddenEvents = (o: RunOutcome) => o.forbidden.map((f) => f.event);

describe('well-behaved files', () => {
  test('async handler returns its result', async () => {
    const o = await run('good_async.py', [{ numbers: [1, 2, 3] }, { numbers: [] }]);
    expect(o.status).toBe('ok');
    expect(o.payloads.map((p) => p.status)).toEqual(['ok', 'ok']);
    expect(o.payloads[0].result).toEqual({ echo: { numbers: [1, 2, 3] }, sum: 6 });
    expect(o.spec).toMatchObject({ runtime: 'runsc', networkMode: 'none', readOnlyRootfs: true, capDrop: ['ALL'], syscallMonitor: true });
    expect(o.spec.securityOpt).toEqual(['no-new-privileges', expect.stringMatching(/^seccomp=taskflow-[0-9a-f]{12}$/)]);
    expect(o.syscalls).toEqual([]);
    expect(o.forgedFrames).toBe(0);
  });

  test('sync handler returns its result', async () => {
    const o = await run('good_sync.py', [{ numbers: [4, 5] }]);
    expect(o.status).toBe('ok');
    expect(o.payloads[0].result).toEqual({ echo: { numbers: [4, 5] }, sum: 9, kind: 'sync' });
  });
});

describe('resource exhaustion', () => {
  test('CPU spin times out', async () => {
    const o = await run('cpu_spin.py');
    expect(o.status).toBe('timeout');
    expect(o.payloads[0].status).toBe('timeout');
    expect(o.payloads[0].error?.type).toBe('Timeout');
  });

  test('sleeping forever times out', async () => {
    const o = await run('sleep_forever.py');
    expect(o.payloads[0].status).toBe('timeout');
  });

  test('an endless loop at import time fails the load with a timeout', async () => {
    const o = await run('import_loop.py');
    expect(o.load.status).toBe('timeout');
    expect(o.payloads[0].error?.type).toBe('LoadFailed');
  });

  test('a memory bomb is OOM-killed', async () => {
    const o = await run('memory_bomb.py');
    expect(o.status).toBe('memory_limit');
    expect(o.payloads[0].error?.type).toBe('MemoryLimitExceeded');
    // Under systrap the kernel kills the host process behind the handler's address space and the
    // container lives on; when it picks the one behind PID 1, the container's end says so.
    if (o.exit) expect(o.exit.oomKilled).toBe(true);
  });

  test('a fork bomb is refused and leaves no processes on the host', async () => {
    const before = await hostOwnProcesses();
    const o = await run('fork_bomb.py');
    expect(o.status).toBe('forbidden');
    expect(forbiddenEvents(o)).toContain('os.fork');
    // The container's host processes (shim, gofer, sandbox) go away with it; removal runs in the
    // background, so give it a moment. Forks inside gVisor never were host processes.
    const own = () => hostProcesses().filter((cmd) => cmd.includes(o.spec.containerId));
    const until = Date.now() + 15000;
    while (own().length && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    expect(own()).toEqual([]);
    // Overall: the host's own processes (those of other live containers, like the pool's refill,
    // aside) are back where they were.
    expect(await hostOwnProcesses()).toBeLessThanOrEqual(before + 2);
  });

  test('a thread bomb is stopped by a limit and named', async () => {
    const o = await run('thread_bomb.py');
    if (o.payloads[0].status === 'ok') {
      expect(o.status).toBe('ok');
      // The limit refused a thread: the handler saw it fail long before 100000.
      expect((o.payloads[0].result as { threads_started: number }).threads_started).toBeLessThan(100000);
    } else {
      expect(['memory_limit', 'timeout']).toContain(o.status);
    }
  });

  test('filling /tmp stops at the tmpfs size', async () => {
    const o = await run('disk_fill.py');
    const r = o.payloads[0].result as { bytes_written: number; errno: number };
    expect(r.bytes_written).toBeLessThanOrEqual(config.sandbox.limits.tmpfsMiB * 1024 * 1024);
    expect([28, 27]).toContain(r.errno); // ENOSPC (tmpfs) or EFBIG (fsize)
  });

  test('descriptor exhaustion hits nofile', async () => {
    const o = await run('fd_exhaust.py');
    const r = o.payloads[0].result as { fds_opened: number; errno: number };
    expect(r.errno).toBe(24); // EMFILE
    expect(r.fds_opened).toBeLessThanOrEqual(config.sandbox.limits.nofile);
  });

  test('an output flood is capped and flagged', async () => {
    const o = await run('output_flood.py');
    expect(o.outputTruncated).toBe(true);
    expect(Buffer.byteLength(o.stdoutTail)).toBeLessThanOrEqual(config.sandbox.limits.outputCapBytes + 4);
    expect(Buffer.byteLength(o.stderrTail)).toBeLessThanOrEqual(config.sandbox.limits.outputCapBytes + 4);
  });

  test('a huge result is refused at the result cap', async () => {
    // Enough memory to build the 50 MB string, so the cap (not the OOM killer) must stop it.
    const o = await sandbox.validate({
      source: fixture('huge_result.py'),
      fileName: 'huge_result.py',
      payloads: [{}],
      limits: { memoryMiB: 512 },
    });
    expect(JSON.stringify(o).length).toBeLessThan(config.sandbox.limits.resultCapBytes);
    expect(o.payloads[0].status).toBe('error');
    expect(o.payloads[0].error?.type).toBe('ResultTooLarge');
  });

  test('catastrophic regex backtracking times out', async () => {
    const o = await run('regex_backtrack.py');
    expect(o.payloads[0].status).toBe('timeout');
  });
});

describe('escapes and snooping', () => {
  test('subprocess and shell are refused', async () => {
    const o = await run('subprocess_shell.py');
    expect(o.status).toBe('forbidden');
    expect(forbiddenEvents(o)).toEqual(expect.arrayContaining(['subprocess.Popen']));
    expect(JSON.stringify(o.payloads[0])).not.toMatch(/uid=\d+/);
  });

  test('host files, docker.sock and other processes stay out of reach', async () => {
    const o = await run('read_host_files.py');
    const text = JSON.stringify(o.payloads[0]);
    expect(text).not.toContain(os.hostname());
    expect(fs.existsSync('/etc/shadow') ? text.includes(fs.readFileSync('/etc/shadow', 'utf8').slice(0, 20)) : false).toBe(false);
    const r = o.payloads[0].result as Record<string, { ok: boolean }> & { docker_sock_exists: boolean };
    expect(r.docker_sock_exists).toBe(false);
    expect(r['/proc/1/environ'].ok).toBe(false);
    expect(forbiddenEvents(o)).toContain('open');
  });

  test("the agent's descriptors, environ and maps are out of the handler's reach, by any path, hook or no hook", async () => {
    const o = await run('evade_agent_fds.py', [{ hook: 'on' }, { hook: 'off' }, { ping: true }]);
    type Tour = Record<string, Record<string, string>>;
    const [hooked, unhooked] = [o.payloads[0].result as Tour, o.payloads[1].result as Tour];
    const ways = ['dir_fd /proc', 'dir_fd /proc/1', '/proc/self/fd', '/dev/fd', 'symlink', 'chdir', 'thread'];
    expect(Object.keys(hooked)).toEqual(ways);
    expect(Object.keys(unhooked)).toEqual([...ways, 'every fd']);
    // Every descriptor the agent holds, its pipes to the handler's process included, refused both ways.
    const everyFd = Object.entries(unhooked['every fd']);
    expect(everyFd.length).toBeGreaterThanOrEqual(2 * 7); // stdin/out/err and the four pipes at least
    for (const [fd, r] of everyFd) expect([fd, r]).toEqual([fd, expect.stringMatching(/^refused: PermissionError: \[Errno 13\]/)]);
    for (const way of ways) {
      // With the hook: every path is judged where it leads, refused and reported.
      for (const [target, r] of Object.entries(hooked[way]))
        expect([way, target, r]).toEqual([way, target, expect.stringMatching(/^refused: PermissionError: TaskFlow sandbox/)]);
      // Without it, the agent's uid is not the handler's: its descriptors do not open.
      for (const fd of ['fd/0', 'fd/1', 'fd/2'])
        expect([way, fd, unhooked[way][fd]]).toEqual([way, fd, expect.stringMatching(/^refused: PermissionError: \[Errno 13\]/)]);
    }
    expect(o.status).toBe('forbidden');
    expect(o.forbidden.filter((f) => f.payloadIndex === 0 && f.event === 'open').length).toBeGreaterThanOrEqual(ways.length * 5 - 5);
    expect(o.forbidden.filter((f) => f.payloadIndex !== 0)).toEqual([]);
    // The agent's channel is intact: every payload answered, the last as it should, nothing forged.
    expect(o.payloads.map((p) => p.status)).toEqual(['ok', 'ok', 'ok']);
    expect(o.payloads[2].result).toEqual({ pong: true });
    expect(o.forgedFrames).toBe(0);
  });

  test('the host environment is invisible', async () => {
    process.env.TASKFLOW_TEST_SECRET = 'hunter2-do-not-leak';
    const o = await run('read_env.py');
    const env = o.payloads[0].result as Record<string, string>;
    expect(JSON.stringify(o)).not.toContain('hunter2-do-not-leak');
    for (const name of ['HOME', 'USER', 'TASKFLOW_API_KEYS', 'PWD']) {
      if (process.env[name]) expect(env[name]).not.toBe(process.env[name]);
    }
  });

  test('a listener on the host loopback is never reached', async () => {
    const received: Buffer[] = [];
    let connections = 0;
    const server = net.createServer((s) => {
      connections++;
      s.on('data', (d) => received.push(d));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const o = await run('connect_localhost.py', [{ port }]);
      expect((o.payloads[0].result as { connected: boolean }).connected).toBe(false);
      expect(forbiddenEvents(o).some((e) => e.startsWith('socket.'))).toBe(true);
      await new Promise((r) => setTimeout(r, 300));
      expect(connections).toBe(0);
      expect(Buffer.concat(received).toString()).not.toContain('PWNED');
    } finally {
      server.close();
    }
  });

  test('writes outside /tmp fail', async () => {
    const o = await run('write_outside_tmp.py');
    const r = o.payloads[0].result as Record<string, string>;
    for (const outcome of Object.values(r)) expect(outcome).not.toBe('written');
    expect(forbiddenEvents(o)).toContain('open');
  });

  test('signalling the parent or PID 1 does not kill the agent', async () => {
    const o = await run('kill_parent.py', [{}, {}]);
    expect(o.exit).toBeUndefined();
    expect(o.payloads).toHaveLength(2); // the agent lived to report both
    expect(forbiddenEvents(o)).toContain('os.kill');
  });

  test('raw syscalls through ctypes are refused', async () => {
    const o = await run('ctypes_syscall.py');
    expect(o.status).toBe('forbidden');
    expect(forbiddenEvents(o).some((e) => e.startsWith('ctypes.'))).toBe(true);
    expect(o.exit).toBeUndefined();
  });
});

describe('introspection and run-time imports: warnings for the checker, stopped by the run', () => {
  test.each([
    ['dunder_escape.py', ['os.system']], // ().__class__.__base__.__subclasses__() ... __globals__["system"]
    ['evade_posix.py', ['os.system']], // posix.system, the C function behind os.system
    ['evade_importlib.py', ['ctypes.dlopen', 'subprocess.Popen']], // ctypes and subprocess by computed names
  ])('%s passes the static check and is forbidden at run time (%j), nothing done', async (file, events) => {
    const c = await sandbox.check({ source: fixture(file), fileName: file });
    expect(c.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(c.findings.map((f) => f.code)).toContain('metaprogramming');
    const o = await run(file);
    expect(o.status).toBe('forbidden');
    expect(forbiddenEvents(o)).toEqual(expect.arrayContaining(events));
    const text = JSON.stringify(o.payloads);
    expect(text).not.toMatch(/uid=\d+/);
    expect(text).not.toMatch(/CDLL '/); // no library handle came back
    if (file === 'evade_posix.py') expect(o.payloads[0].result).toMatchObject({ ran: false });
  });

  test('forbidden_aliases.py (rejected statically for its subprocess import) is stopped by the run too', async () => {
    const o = await run('forbidden_aliases.py');
    expect(o.status).toBe('forbidden');
    expect(forbiddenEvents(o)).toEqual(expect.arrayContaining(['os.system', 'subprocess.Popen']));
    expect(JSON.stringify(o.payloads)).not.toMatch(/uid=\d+/);
  });
});

describe('report integrity and exits', () => {
  test('printing or writing a fake success report fools nobody', async () => {
    const o = await run('print_fake_success.py');
    expect(o.status).toBe('forbidden'); // it wrote to the private result channel
    expect(o.payloads[0].status).toBe('error');
    expect(JSON.stringify(o.payloads[0].result ?? null)).not.toContain('forged');
    expect(o.payloads[0].error).toMatchObject({ type: 'RuntimeError', message: expect.stringContaining('b41e') });
    expect(forbiddenEvents(o)).toContain('result_channel_tampering');
    expect(o.forgedFrames).toBe(0); // nothing even reached the host's report channel
  });

  test('sys.exit in the handler is an error', async () => {
    const o = await run('sys_exit.py');
    expect(o.payloads[0].status).toBe('error');
    expect(o.payloads[0].error?.type).toBe('SystemExit');
  });

  test('os._exit(0) in the handler is not success', async () => {
    const o = await run('os_exit.py', [{}, {}]);
    expect(o.status).toBe('crashed');
    expect(o.payloads[0].error?.type).toBe('ChildExited');
    expect(o.payloads).toHaveLength(2);
  });

  test('exiting at import time fails the load', async () => {
    const o = await run('exit_at_import.py');
    expect(o.load.status).toBe('error');
  });
});

describe('the handler contract', () => {
  test.each([
    ['no_handler.py', 'handler_missing'],
    ['handler_not_callable.py', 'handler_not_function'],
    ['wrong_arity.py', 'handler_arity'],
    ['zero_arity.py', 'handler_arity'],
  ])('%s fails the load with %s', async (file, code) => {
    const o = await run(file);
    expect(o.load.status).toBe('error');
    expect(o.load.error).toMatchObject({ type: 'ContractError', code });
  });

  test('a syntax error fails the load with its line', async () => {
    const o = await run('syntax_error.py');
    expect(o.load.error?.type).toBe('SyntaxError');
    expect(o.load.error?.traceback).toMatch(/line \d+/);
  });

  test('a raising handler reports type, message and traceback', async () => {
    const o = await run('handler_raises.py');
    expect(o.payloads[0].status).toBe('error');
    expect(o.payloads[0].error?.type).toBe('ValueError');
    expect(o.payloads[0].error?.traceback).toContain('handler_raises.py');
    expect(o.payloads[0].error?.traceback).not.toContain('/opt/taskflow');
  });

  test('a non-JSON result is an error', async () => {
    const o = await run('non_json_result.py');
    expect(o.payloads[0].error?.type).toBe('NonJSONResult');
  });

  test('a result JavaScript cannot hold exactly is refused, plain, nested or forged; the edges pass exactly', async () => {
    const kinds = ['huge', 'int64', 'twenty_digits', 'just_past', 'nested'];
    const o = await run(
      'unsafe_numbers.py',
      [...kinds, 'edges'].map((kind) => ({ kind })),
    );
    expect(o.payloads.slice(0, kinds.length).map((p) => [p.status, p.error?.type])).toEqual(
      kinds.map(() => ['error', 'ResultUnsafeNumber']),
    );
    expect(o.payloads[0].error?.message).toContain('(401 digits)');
    expect(o.payloads[kinds.length]).toMatchObject({ status: 'ok' });
    expect(o.payloads[kinds.length].result).toEqual([2 ** 53 - 1, -(2 ** 53 - 1), 1e20, 1.5, 2 ** 70, '12345678901234567890', true, null]);
    // Numbers the host sent come back as sent: a double past 2^53 is no Python int in the sandbox.
    const doubles = [1e20, 2 ** 60, -(2 ** 70), 12345678901234567000, 1e300, 2 ** 53 - 1];
    const echo = await run('unsafe_numbers.py', [{ kind: 'echo', value: doubles }]);
    expect([echo.payloads[0].status, echo.payloads[0].result]).toEqual(['ok', doubles]);
    for (const kind of ['forge_int', 'forge_nan', 'forge_overflow']) {
      const f = await run('unsafe_numbers.py', [{ kind }]);
      expect([kind, f.payloads[0].status, f.payloads[0].error?.type]).toEqual([kind, 'error', 'ResultUnsafeNumber']);
    }
  });
});

describe("the host's own check of result numbers (not relying on the agent's)", () => {
  test.each([
    ['[9007199254740991, -9007199254740991, 1e20, 1.5e300, 0.1]', true],
    ['{"a": "12345678901234567890", "b\\"c": "\\"99999999999999999999"}', true],
    ['[9007199254740992]', false],
    ['{"a": [{"b": -12345678901234567890}]}', false],
    ['[1e400]', false],
    ['[-1.5E+309]', false],
  ])('%s exact: %s', (text, ok) => {
    const r = parseExactJson(text);
    expect(r.ok).toBe(ok);
    if (r.ok) expect(r.value).toEqual(JSON.parse(text));
  });
});
