/** The sandbox runtime's machinery against the real engine: pools, cancellation, clean-up, checks. */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import Docker from 'dockerode';
import { loadConfig } from '../src/config';
import { silentLogger } from '../src/logger';
import { createSandbox, SandboxCancelledError, sha256, type RunOutcome, type Sandbox } from '../sandbox';
import { verifyEngine } from '../sandbox/engine';
import { EngineUnavailableError } from '../sandbox/errors';
import { imageTag } from '../sandbox/image';
import { instanceId } from '../sandbox/leftovers';
import { LABEL, LABEL_INSTANCE, LABEL_KIND } from '../sandbox/spec';
import { fixture, startSandbox, testConfig } from './helpers/sandbox';

const config = testConfig({ SANDBOX_KEYED_MAX_USES: '3' });
const docker = new Docker({ socketPath: config.sandbox.dockerSocket });
let sandbox: Sandbox;

beforeAll(async () => {
  sandbox = await startSandbox(config, { validationPool: true, keyedLimits: config.taskLimits });
}, 120000);

afterAll(async () => {
  await sandbox?.close();
});

const exists = (id: string) =>
  docker
    .getContainer(id)
    .inspect()
    .then(
      () => true,
      () => false,
    );

async function eventually(check: () => Promise<boolean>, ms = 5000): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}

test('the image tag is a content hash and the engine uses runsc', () => {
  expect(sandbox.image).toBe(imageTag());
  expect(sandbox.image).toMatch(/^taskflow-sandbox:[0-9a-f]{16}$/);
  expect(sandbox.runtime).toBe('runsc');
});

test('a validation container is used once and then removed', async () => {
  const src = fixture('good_sync.py');
  const a = await sandbox.validate({ source: src, fileName: 'a.py', payloads: [{}] });
  const b = await sandbox.validate({ source: src, fileName: 'a.py', payloads: [{}] });
  expect(a.spec.containerId).not.toBe(b.spec.containerId);
  expect(await eventually(async () => !(await exists(a.spec.containerId)))).toBe(true);
});

test('progress is reported per payload', async () => {
  const seen: string[] = [];
  const o = await sandbox.validate({
    source: fixture('good_async.py'),
    fileName: 'good_async.py',
    payloads: [{}, {}, {}],
    onProgress: (p) => seen.push(`${p.phase}:${p.completed}/${p.total}`),
  });
  expect(o.status).toBe('ok');
  expect(seen[0]).toBe('loading:0/3');
  expect(seen).toEqual(expect.arrayContaining(['payload:1/3', 'payload:2/3']));
});

test('cancelling kills the container at once', async () => {
  const ctl = new AbortController();
  const started = Date.now();
  const run = sandbox.validate({
    source: fixture('sleep_forever.py'),
    fileName: 'sleep_forever.py',
    payloads: [{}],
    limits: { payloadTimeoutMs: 60000, totalTimeoutMs: 60000 },
    signal: ctl.signal,
  });
  setTimeout(() => ctl.abort(), 500);
  await expect(run).rejects.toBeInstanceOf(SandboxCancelledError);
  expect(Date.now() - started).toBeLessThan(20000);
});

test('the total wall-clock limit kills a run whose payloads each stay under theirs', async () => {
  const o = await sandbox.validate({
    source: fixture('sleep_forever.py'),
    fileName: 'sleep_forever.py',
    payloads: [{}, {}, {}, {}],
    limits: { payloadTimeoutMs: 2000, totalTimeoutMs: 3000 },
  });
  expect(o.status).toBe('timeout');
  expect(o.exit?.stoppedByHost).toBe('total_timeout');
  expect(o.payloads.some((p) => p.status === 'timeout')).toBe(true);
});

describe('keyed pool', () => {
  const src = fixture('good_sync.py');
  const key = { owner: 'alice', sha256: sha256(src) };

  test('reuses a container for the same owner and sha, up to max uses', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const o = await sandbox.runKeyed(key, { source: src, fileName: 'good_sync.py', payloads: [{ numbers: [i] }] });
      expect(o.status).toBe('ok');
      expect(o.payloads[0].result).toMatchObject({ sum: i });
      ids.push(o.spec.containerId);
    }
    expect(ids[1]).toBe(ids[0]);
    expect(ids[2]).toBe(ids[0]);
    expect(ids[3]).not.toBe(ids[0]); // max uses (3) reached
  });

  test('never shares a container across owners or file versions', async () => {
    const mine = await sandbox.runKeyed(key, { source: src, fileName: 'good_sync.py', payloads: [{}] });
    const other = await sandbox.runKeyed({ ...key, owner: 'mallory' }, { source: src, fileName: 'good_sync.py', payloads: [{}] });
    const src2 = fixture('good_async.py');
    const v2 = await sandbox.runKeyed(
      { owner: 'alice', sha256: sha256(src2) },
      { source: src2, fileName: 'good_async.py', payloads: [{}] },
    );
    expect(other.spec.containerId).not.toBe(mine.spec.containerId);
    expect(v2.spec.containerId).not.toBe(mine.spec.containerId);
  });

  test('a validation run and a production run look the same from inside: memory, CPUs, limits, names, environment', async () => {
    const probe = fixture('probe_environment.py');
    const validation = await sandbox.validate({ source: probe, fileName: 'probe_environment.py', payloads: [{}] });
    const production = await sandbox.runKeyed(
      { owner: 'alice', sha256: sha256(probe) },
      { source: probe, fileName: 'probe_environment.py', payloads: [{}] },
    );
    expect([validation.status, production.status]).toEqual(['ok', 'ok']);
    const seen = validation.payloads[0].result as { mem_total: string; phys_pages: number; page_size: number };
    expect(seen.phys_pages * seen.page_size).toBe(config.sandbox.limits.memoryMiB * 1024 * 1024);
    expect(production.payloads[0].result).toEqual(seen);
  });

  test('the limits are one set: a keyed pool with other container limits, or TASK_MEMORY_MIB, is refused', async () => {
    const other = { ...config.taskLimits, memoryMiB: config.taskLimits.memoryMiB * 2 };
    await expect(createSandbox(config.sandbox, silentLogger, { keyedLimits: other })).rejects.toThrow(/validation containers' limits/);
    expect(() => loadConfig({ TASK_MEMORY_MIB: '512' })).toThrow(/TASK_MEMORY_MIB: removed/);
  });

  test('a container that misbehaved is not handed out again', async () => {
    const bad = fixture('subprocess_shell.py');
    const k = { owner: 'alice', sha256: sha256(bad) };
    const a = await sandbox.runKeyed(k, { source: bad, fileName: 'subprocess_shell.py', payloads: [{}] });
    const b = await sandbox.runKeyed(k, { source: bad, fileName: 'subprocess_shell.py', payloads: [{}] });
    expect(a.forbidden.length).toBeGreaterThan(0);
    expect(b.spec.containerId).not.toBe(a.spec.containerId);
  });

  test("one event loop for the container's life: async handlers share it, what they start lives on and runs during calls only", async () => {
    const asyncSrc = [
      'import asyncio',
      'ticks = [0]',
      'loops = set()',
      'async def tick():',
      '    while True:',
      '        ticks[0] += 1',
      '        await asyncio.sleep(0.01)',
      'async def handler(payload):',
      '    loop = asyncio.get_running_loop()',
      '    if not loops:',
      '        loop.create_task(tick())',
      '    loops.add(id(loop))',
      '    await asyncio.sleep(payload.get("wait", 0))',
      '    return {"loops": len(loops), "ticks": ticks[0]}',
      '',
    ].join('\n');
    const k = { owner: 'alice', sha256: sha256(asyncSrc) };
    const run = (wait = 0) => sandbox.runKeyed(k, { source: asyncSrc, fileName: 'ticker.py', payloads: [{ wait }] });
    const ticks = (o: RunOutcome) => (o.payloads[0].result as { ticks: number }).ticks;
    const first = await run();
    await new Promise((r) => setTimeout(r, 1000)); // ~90 ticks, were the task running
    const second = await run();
    const third = await run(0.2);
    expect(new Set([first, second, third].map((o) => o.spec.containerId)).size).toBe(1);
    // The same loop throughout; the task it started was frozen between calls, and ticks again during one.
    expect([first, second, third].map((o) => o.payloads[0].result)).toEqual([1, 1, 1].map((loops) => expect.objectContaining({ loops })));
    expect(ticks(second) - ticks(first)).toBeLessThan(20);
    expect(ticks(third) - ticks(second)).toBeGreaterThan(5);
  });

  test('no user code runs between tasks: a thread left spinning is frozen while its container is idle', async () => {
    const spinner = fixture('idle_spinner.py');
    const k = { owner: 'alice', sha256: sha256(spinner) };
    const run = () => sandbox.runKeyed(k, { source: spinner, fileName: 'idle_spinner.py', payloads: [{}] });
    const first = await run();
    await new Promise((r) => setTimeout(r, 1500)); // idle: the container is not in use
    const second = await run();
    expect([first.status, second.status, second.spec.containerId]).toEqual(['ok', 'ok', first.spec.containerId]);
    // The thread itself saw a pause as long as the idle time, and the handler's process used little CPU across it.
    expect((second.payloads[0].result as { longest_pause_s: number }).longest_pause_s).toBeGreaterThanOrEqual(1.4);
    expect(second.cpuMs).toBeLessThan(750);
  });

  test('plain def handlers still run outside any running loop: asyncio.run and run_until_complete work, call after call', async () => {
    const syncSrc = [
      'import asyncio',
      'async def double(n):',
      '    await asyncio.sleep(0)',
      '    return 2 * n',
      'def handler(payload):',
      '    if payload["how"] == "run":',
      '        return asyncio.run(double(payload["n"]))',
      '    return asyncio.get_event_loop().run_until_complete(double(payload["n"]))',
      '',
    ].join('\n');
    const k = { owner: 'alice', sha256: sha256(syncSrc) };
    // Each call starts with an idle current loop, even after asyncio.run() (which unsets it) in the one before.
    for (const [n, how] of [
      [1, 'loop'],
      [2, 'run'],
      [3, 'loop'],
      [4, 'run'],
    ] as const) {
      const o = await sandbox.runKeyed(k, { source: syncSrc, fileName: 'sync_async.py', payloads: [{ n, how }] });
      expect([o.status, o.payloads[0].result]).toEqual(['ok', 2 * n]);
    }
  });

  test('refuses a source that does not match the key', async () => {
    await expect(
      sandbox.runKeyed({ owner: 'alice', sha256: 'f'.repeat(64) }, { source: src, fileName: 'x.py', payloads: [{}] }),
    ).rejects.toThrow(/does not match/);
  });
});

describe('static check inside the sandbox image', () => {
  test('reports findings with lines and never runs the file', async () => {
    const o = await sandbox.check({ source: fixture('subprocess_shell.py'), fileName: 'subprocess_shell.py' });
    expect(o.ok).toBe(false);
    expect(o.findings).toEqual(
      expect.arrayContaining([expect.objectContaining({ code: 'forbidden_import', severity: 'error', line: expect.any(Number) })]),
    );
  });

  test('passes a good file and returns literal TEST_PAYLOADS', async () => {
    const o = await sandbox.check({ source: fixture('good_with_test_payloads.py'), fileName: 'good_with_test_payloads.py' });
    expect(o.ok).toBe(true);
    expect(Array.isArray(o.testPayloads)).toBe(true);
  });

  test('an import-time loop is only parsed, so the check returns quickly', async () => {
    const o = await sandbox.check({ source: fixture('import_loop.py'), fileName: 'import_loop.py' });
    expect(o.findings.map((f) => f.code)).toContain('import_time_work');
  });

  test('one long-lived checker container serves many checks and runs none of them', async () => {
    const checkers = async () =>
      (await docker.listContainers({ filters: { label: [`${LABEL_INSTANCE}=${instanceId()}`, `${LABEL_KIND}=checker`] } })).map(
        (c) => c.Id,
      );
    // Were it ever run, this file would leave a mark in the container's /tmp and a process behind.
    const planted = [
      'import subprocess',
      'open("/tmp/ran", "w").write("ran")',
      'subprocess.Popen(["/usr/bin/python3.11", "-c", "import time; time.sleep(600)"])',
      'def handler(payload):',
      '    return payload',
      '',
    ].join('\n');
    await sandbox.check({ source: fixture('good_sync.py'), fileName: 'good_sync.py' });
    const before = await checkers();
    expect(before).toHaveLength(1);
    for (let i = 0; i < 3; i++) {
      const o = await sandbox.check({ source: planted, fileName: `planted_${i}.py` });
      expect(o.findings.map((f) => f.code)).toContain('forbidden_import');
    }
    expect(await checkers()).toEqual(before);
    // Inside it: no mark, and no process but the agent and the next (idle, pre-started) checker.
    const exec = await docker.getContainer(before[0]).exec({
      Cmd: [
        '/usr/bin/python3.11',
        '-c',
        'import os; print(sorted(os.listdir("/tmp"))); print(sorted(open("/proc/%s/cmdline" % p).read().replace("\\0", " ").strip() for p in os.listdir("/proc") if p.isdigit() and p != str(os.getpid())))',
      ],
      AttachStdout: true,
      AttachStderr: true,
      User: '65534:65534',
    });
    const stream = await exec.start({});
    const out = await new Promise<string>((resolve) => {
      let text = '';
      stream.on('data', (c: Buffer) => (text += c.toString('utf8')));
      stream.on('end', () => resolve(text));
    });
    expect(out).toContain('[]');
    expect(out).not.toContain('ran');
    expect(out).not.toContain('time.sleep');
    expect(out).toContain('/opt/taskflow/agent.py');
  });

  test('a file whose check needs more memory than the checker process may use fails only its own check', async () => {
    const list = async () =>
      (await docker.listContainers({ filters: { label: [`${LABEL_INSTANCE}=${instanceId()}`, `${LABEL_KIND}=checker`] } })).map(
        (c) => c.Id,
      );
    await sandbox.check({ source: fixture('good_sync.py'), fileName: 'good_sync.py' });
    const before = await list();
    // 1 MB of list literal: over 500 MB to parse, compile and lint on the host; the checker container has 128 MiB.
    const big = `def handler(payload):\n    return 1\n\n\nX = [${'1,'.repeat(500_000)}]\n`;
    const o = await sandbox.check({ source: big, fileName: 'big.py', maxBytes: 2 * 1024 * 1024 });
    expect(o.findings).toEqual([
      expect.objectContaining({
        code: 'too_complex',
        severity: 'error',
        message: `checking the file needs more memory than the checker may use (${config.sandbox.limits.memoryMiB / 2} MiB)`,
      }),
    ]);
    // The container (not OOM-killed) and its agent serve the next check.
    expect(await list()).toEqual(before);
    expect((await sandbox.check({ source: fixture('good_sync.py'), fileName: 'good_sync.py' })).ok).toBe(true);
    expect(await list()).toEqual(before);
  });

  test('a cancelled check takes its checker container down; the next check gets a new one', async () => {
    const list = async () =>
      (await docker.listContainers({ filters: { label: [`${LABEL_INSTANCE}=${instanceId()}`, `${LABEL_KIND}=checker`] } })).map(
        (c) => c.Id,
      );
    await sandbox.check({ source: fixture('good_sync.py'), fileName: 'good_sync.py' });
    const [first] = await list();
    const aborted = new AbortController();
    aborted.abort();
    await expect(
      sandbox.check({ source: fixture('good_sync.py'), fileName: 'good_sync.py', signal: aborted.signal }),
    ).rejects.toBeInstanceOf(SandboxCancelledError);
    const o = await sandbox.check({ source: fixture('good_sync.py'), fileName: 'good_sync.py' });
    expect(o.ok).toBe(true);
    expect(await eventually(async () => (await list()).length === 1 && !(await list()).includes(first))).toBe(true);
  });

  test('bytes that are not UTF-8 are a finding', async () => {
    const o = await sandbox.check({ source: Buffer.from([0x64, 0x65, 0x66, 0xff, 0xfe, 0x0a]), fileName: 'bin.py' });
    expect(o.findings.map((f) => f.code)).toContain('not_utf8');
  });
});

test('health: the engine answers with runsc; a failed container start shows until one succeeds', async () => {
  // No pool refill in flight: only this test's starts count below.
  const idle = () =>
    Promise.resolve(sandbox.stats()).then((s) => s.validation.starting + s.checker.starting + (s.keyed?.starting ?? 1) === 0);
  expect(await eventually(idle, 30000)).toBe(true);
  // Docker itself refuses a 1 MiB memory limit (its minimum is 6 MiB): a real failed start.
  await expect(
    sandbox.runCold({ source: fixture('good_sync.py'), fileName: 'a.py', payloads: [{}], limits: { memoryMiB: 1 } }),
  ).rejects.toThrow();
  const failed = await sandbox.health();
  expect(failed).toMatchObject({ engine: true, lastStartFailed: true, problem: expect.stringMatching(/^container start failed: /) });
  expect((await sandbox.runCold({ source: fixture('good_sync.py'), fileName: 'a.py', payloads: [{}] })).status).toBe('ok');
  expect(await sandbox.health()).toEqual({
    engine: true,
    runtime: 'runsc',
    runsc: { version: sandbox.runsc!.version, platform: 'systrap' },
    lastStartFailed: false,
  });
  expect(sandbox.stats()).toEqual({
    validation: { ready: expect.any(Number), starting: expect.any(Number) },
    checker: { idle: expect.any(Number), busy: 0, starting: expect.any(Number) },
    keyed: { idle: expect.any(Number), busy: 0, spares: expect.any(Number), starting: expect.any(Number) },
  });
});

test("containers left by a dead process are removed at start-up; a live one's are kept", async () => {
  const make = (instance: string) =>
    docker.createContainer({
      Image: sandbox.image,
      Cmd: ['/usr/bin/python3.11', '-c', 'pass'],
      Labels: { [LABEL]: 'true', [LABEL_INSTANCE]: instance },
    });
  const dead = await make(`${os.hostname()}/999999/1`);
  const foreign = await make('another-host/1/1');
  try {
    const second = await createSandbox(config.sandbox, silentLogger);
    await second.close();
    expect(await exists(dead.id)).toBe(false);
    expect(await exists(foreign.id)).toBe(true);
  } finally {
    await foreign.remove({ force: true }).catch(() => undefined);
  }
});

describe('engine verification', () => {
  // The runsc binary the real engine runs (registered by setup.sh), behind a fake engine's registration.
  let realRunsc = '';
  let TASKFLOW_ARGS: string[] = [];
  beforeAll(async () => {
    const info = (await docker.info()) as { Runtimes: { runsc: { runtimeArgs: string[] } } };
    realRunsc = info.Runtimes.runsc.runtimeArgs.find((a) => a.startsWith('--taskflow-runsc='))!.slice('--taskflow-runsc='.length);
    TASKFLOW_ARGS = [`--taskflow-runsc=${realRunsc}`, '--taskflow-monitor-dir=/run/x', '--network=none', '--oci-seccomp'];
  });
  const fake = (runtimes: string[], runscArgs: string[] = TASKFLOW_ARGS) =>
    ({
      info: async () => ({
        Runtimes: Object.fromEntries(runtimes.map((r) => [r, r === 'runsc' ? { path: '/w', runtimeArgs: runscArgs } : {}])),
      }),
    }) as unknown as Docker;

  test('without runsc it refuses and says how to fix it', async () => {
    await expect(verifyEngine(fake(['runc']), config.sandbox, silentLogger)).rejects.toThrow(/no 'runsc'.*daemon\.json/s);
  });

  test('runsc counts only with --oci-seccomp and through the monitor wrapper', async () => {
    await expect(verifyEngine(fake(['runsc'], ['--network=none']), config.sandbox, silentLogger)).rejects.toThrow(
      /--oci-seccomp.*setup\.sh/s,
    );
    await expect(verifyEngine(fake(['runsc'], ['--network=none', '--oci-seccomp']), config.sandbox, silentLogger)).rejects.toThrow(
      /monitor wrapper/,
    );
    // Not even the insecure switch makes a half-registered runsc acceptable.
    await expect(
      verifyEngine(fake(['runsc', 'runc'], ['--oci-seccomp']), { ...config.sandbox, allowInsecureRunc: true }, silentLogger),
    ).rejects.toThrow(EngineUnavailableError);
    expect(await verifyEngine(fake(['runsc']), config.sandbox, silentLogger)).toMatchObject({ runtime: 'runsc', monitorDir: '/run/x' });
  });

  test("runsc's version and platform come from the binary itself; one older than RUNSC_MIN_VERSION is refused", async () => {
    const says = execFileSync(realRunsc, ['--version'], { encoding: 'utf8' });
    const { runsc } = await verifyEngine(fake(['runsc']), config.sandbox, silentLogger);
    expect(runsc).toEqual({ path: realRunsc, version: expect.any(String), release: expect.any(Number), platform: 'systrap' });
    expect(says.split('\n')[0]).toBe(`runsc version ${runsc!.version}`);
    expect(runsc!.version).toContain(String(runsc!.release));
    expect(runsc!.release).toBeGreaterThanOrEqual(config.sandbox.runscMinRelease);
    // The registration's own --platform wins over the binary's default.
    expect(
      (await verifyEngine(fake(['runsc'], [...TASKFLOW_ARGS, '--platform=ptrace']), config.sandbox, silentLogger)).runsc,
    ).toMatchObject({ platform: 'ptrace' });
    const newer = { ...config.sandbox, runscMinRelease: runsc!.release + 1 };
    await expect(verifyEngine(fake(['runsc']), newer, silentLogger)).rejects.toThrow(
      new RegExp(`release ${runsc!.release} .*older than the minimum ${runsc!.release + 1} \\(RUNSC_MIN_VERSION\\).*setup\\.sh`, 's'),
    );
    const missing = [...TASKFLOW_ARGS.filter((a) => !a.startsWith('--taskflow-runsc=')), '--taskflow-runsc=/nonexistent/runsc'];
    await expect(verifyEngine(fake(['runsc'], missing), config.sandbox, silentLogger)).rejects.toThrow(/cannot ask the engine's runsc/);
  });

  test('runc only with the explicit insecure setting, logged loudly', async () => {
    const warnings: string[] = [];
    const log = { ...silentLogger, warn: (m: string) => void warnings.push(m) };
    const engine = await verifyEngine(fake(['runc']), { ...config.sandbox, allowInsecureRunc: true }, log);
    expect(engine).toEqual({ runtime: 'runc' });
    expect(warnings.join(' ')).toMatch(/INSECURE/);
  });

  test('an unreachable engine is a clear infrastructure error', async () => {
    const broken = new Docker({ socketPath: '/nonexistent/docker.sock' });
    await expect(
      verifyEngine(broken, { ...config.sandbox, dockerSocket: '/nonexistent/docker.sock' }, silentLogger),
    ).rejects.toBeInstanceOf(EngineUnavailableError);
  });
});
