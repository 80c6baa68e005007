/**
 * Forbidden behaviour enforced and seen at the system-call layer (real Docker + runsc). Every
 * fixture here passes the static check and slips past the audit hook — through C entry points
 * without audit events, computed names, a second thread, a spawned interpreter, or by switching
 * the hook off — and for each class of system call the test asserts: refused by gVisor's seccomp
 * layer, named in the outcome and in the validation findings, the container discarded, the host
 * unharmed.
 */
import fs from 'node:fs';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { runFindings } from '../activities/validation-findings';
import { describeExitCode } from '../sandbox/agent-container';
import { kernelRecordsOomKill } from '../sandbox/oom-record';
import type { RunOutcome, Sandbox } from '../sandbox';
import { NEAR_MEMORY_LIMIT, sha256 } from '../sandbox';
import { SECCOMP_PROFILE } from '../sandbox/seccomp-profile';
import { instanceId } from '../sandbox/leftovers';
import { containerSpec, LABEL_INSTANCE } from '../sandbox/spec';
import { fixture, startSandbox, testConfig } from './helpers/sandbox';

const config = testConfig();
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

async function gone(id: string): Promise<boolean> {
  const until = Date.now() + 15000;
  while ((await exists(id)) && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  return !(await exists(id));
}

/** Host processes that mention this container (shim, gofer, sandbox): none once it is gone. */
const hostProcessesOf = (containerId: string): string[] =>
  fs
    .readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      } catch {
        return '';
      }
    })
    .filter((cmd) => cmd.includes(containerId));

/** Audit-hook events (the agent's own SIGSYS note aside): none means the hook never saw it. */
const hookEvents = (o: RunOutcome) => o.forbidden.filter((f) => f.event !== 'forbidden_syscall').map((f) => f.event);

const CASES: [file: string, syscall: string, how: string][] = [
  ['evade_socket.py', 'socket', 'AF_INET socket, default family past the hook'],
  ['evade_socket_thread.py', 'socket', 'the same from a second thread'],
  ['evade_spawn_interpreter.py', 'clone', 'an unhooked interpreter via _posixsubprocess.fork_exec'],
  ['evade_exec.py', 'execve', 'hook switched off, then exec'],
  ['evade_fork_thread.py', 'clone', 'hook switched off, fork from a second thread'],
  ['evade_ptrace.py', 'ptrace', 'ptrace(ATTACH, 1) through ctypes'],
  ['evade_process_vm.py', 'process_vm_readv', "reading PID 1's memory"],
  ['evade_pidfd.py', 'pidfd_open', 'a handle on PID 1 (no audit event)'],
  ['evade_kill_pid1.py', 'kill', 'SIGKILL to PID 1'],
  ['evade_setown.py', 'fcntl', 'SIGIO to PID 1 through F_SETOWN'],
];

describe('each class of forbidden system call, by a file that evades the Python-level guards', () => {
  test('every fixture passes the static check (errors none)', async () => {
    for (const [file] of [...CASES, ['evade_sigmask.py']]) {
      const c = await sandbox.check({ source: fixture(file), fileName: file });
      expect({ file, errors: c.findings.filter((f) => f.severity === 'error') }).toEqual({ file, errors: [] });
    }
  });

  test.each(CASES)('%s is refused and named: %s (%s)', async (file, syscall) => {
    const o = await sandbox.validate({ source: fixture(file), fileName: file, payloads: [{}] });
    expect(o.status).toBe('forbidden');
    expect(o.syscalls.map((c) => c.syscall)).toContain(syscall);
    const c = o.syscalls.find((x) => x.syscall === syscall)!;
    expect(c).toMatchObject({ pid: expect.any(Number), payloadIndex: 0 });
    expect(c.pid).not.toBe(1); // the handler's process, not the agent
    if (file.includes('thread')) expect(c.tid).not.toBe(c.pid);
    expect(hookEvents(o)).toEqual([]); // the audit hook never saw it
    // The handler's process ended by SIGSYS; the agent lived to say so.
    expect(o.payloads[0]).toMatchObject({ status: 'error', error: { type: 'ForbiddenSyscall' } });
    const findings = runFindings(o, config.sandbox.limits);
    expect(findings).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ code: 'forbidden_syscall', message: expect.stringMatching(new RegExp(`^${syscall} with payload 0: `)) }),
      ]),
    );
    // Discarded, leaving nothing on the host.
    expect(await gone(o.spec.containerId)).toBe(true);
    expect(hostProcessesOf(o.spec.containerId)).toEqual([]);
  });
});

test('a process that blocks SIGSYS survives its own filter, but the host reads the refusal and stops the run', async () => {
  const o = await sandbox.validate({ source: fixture('evade_sigmask.py'), fileName: 'evade_sigmask.py', payloads: [{ linger: 10 }, {}] });
  expect(o.status).toBe('forbidden');
  expect(o.syscalls.map((c) => c.syscall)).toEqual(['socket']);
  expect(hookEvents(o)).toEqual([]);
  // Not the payload timeout, not the agent: the host stopped it as soon as gVisor logged the refusal.
  expect(o.exit?.stoppedByHost).toBe('forbidden_syscall');
  expect(o.payloads.map((p) => p.error?.type)).toEqual(['ForbiddenSyscall', 'ForbiddenSyscall']);
  expect(await gone(o.spec.containerId)).toBe(true);
});

test('the container-wide profile alone (no runner filter) refuses them too, for any process in the sandbox', async () => {
  // The sandbox's own container spec with another command: a child of PID 1, not under the
  // runner's filter, tries each call; EPERM (1) is gVisor applying the profile.
  const probe = [
    'import ctypes, os, subprocess, sys, threading',
    'libc = ctypes.CDLL(None, use_errno=True)',
    'def sc(nr, *a):',
    '    r = libc.syscall(nr, *[ctypes.c_long(x) for x in a])',
    '    return 0 if r >= 0 else ctypes.get_errno()',
    't = threading.Thread(target=print); t.start(); t.join()  # threads still work (clone3 unlisted)',
    'print({"socket_inet": sc(41, 2, 1, 0), "socket_unix": sc(41, 1, 1, 0), "ptrace": sc(101, 16, 1, 0, 0),',
    '       "process_vm_readv": sc(310, 1, 0, 0, 0, 0, 0), "pidfd_open": sc(434, 1, 0), "kill_1": sc(62, 1, 0),',
    '       "kill_1_high_bits": sc(62, 1 | (1 << 32), 0), "kill_all": sc(62, -1, 0), "tgkill_1": sc(234, 1, 1, 0),',
    '       "setown_1": sc(72, 0, 8, 1), "kill_self": sc(62, os.getpid(), 0)})',
  ].join('\n');
  const spec = containerSpec(sandbox.image, 'runsc', config.sandbox.limits, { [LABEL_INSTANCE]: instanceId() });
  const c = await docker.createContainer({
    ...spec,
    Cmd: [
      '/usr/bin/python3.11',
      '-c',
      `import subprocess, sys; sys.exit(subprocess.run([sys.executable, "-c", ${JSON.stringify(probe)}]).returncode)`,
    ],
    OpenStdin: false,
    AttachStdin: false,
    HostConfig: { ...spec.HostConfig, LogConfig: { Type: 'json-file', Config: {} } },
  });
  try {
    await c.start();
    expect((await c.wait()).StatusCode).toBe(0);
    const logs = (await c.logs({ stdout: true, stderr: true })).toString('latin1');
    const seen = JSON.parse(logs.slice(logs.indexOf('{')).split('\n')[0].replace(/'/g, '"')) as Record<string, number>;
    const EPERM = 1;
    expect(seen).toEqual({
      socket_inet: EPERM,
      socket_unix: 0,
      ptrace: EPERM,
      process_vm_readv: EPERM,
      pidfd_open: EPERM,
      kill_1: EPERM,
      kill_1_high_bits: EPERM,
      kill_all: EPERM,
      tgkill_1: EPERM,
      setown_1: EPERM,
      kill_self: 0,
    });
  } finally {
    await c.remove({ force: true });
  }
  expect(JSON.stringify(SECCOMP_PROFILE)).not.toContain('clone3'); // threads need ENOSYS from it
});

describe('keyed (production) containers', () => {
  test('a forbidden call ends the keyed container, and the next run of the same file gets a fresh one', async () => {
    const src = fixture('evade_socket.py');
    const key = { owner: 'mallory', sha256: sha256(src) };
    const a = await sandbox.runKeyed(key, { source: src, fileName: 'evade_socket.py', payloads: [{}] });
    const b = await sandbox.runKeyed(key, { source: src, fileName: 'evade_socket.py', payloads: [{}] });
    expect([a.status, b.status]).toEqual(['forbidden', 'forbidden']);
    expect(b.spec.containerId).not.toBe(a.spec.containerId);
    expect(await gone(a.spec.containerId)).toBe(true);
  });

  test('after a run that came near the memory limit the container is retired: same file, same payload, same outcome', async () => {
    const src =
      'def handler(payload):\n    block = bytearray(payload["mib"] << 20)\n    block[::4096] = b"x" * len(block[::4096])\n    return {"ok": len(block)}\n';
    const key = { owner: 'alice', sha256: sha256(src) };
    const run = (mib: number) => sandbox.runKeyed(key, { source: src, fileName: 'big.py', payloads: [{ mib }] });
    // Small runs are served warm, by one container; they also say what the interpreter itself takes.
    const small = [await run(1), await run(1)];
    expect(small.map((r) => r.status)).toEqual(['ok', 'ok']);
    expect(small[1].spec.containerId).toBe(small[0].spec.containerId);
    // Just past NEAR_MEMORY_LIMIT, well short of an OOM kill.
    const threshold = NEAR_MEMORY_LIMIT * config.taskLimits.memoryMiB * 1024;
    const mib = Math.ceil((threshold - small[1].peakMemoryKiB) / 1024) + 8;
    const big = [await run(mib), await run(mib)];
    expect(big.map((r) => r.status)).toEqual(['ok', 'ok']);
    expect(big[0].peakMemoryKiB).toBeGreaterThan(threshold);
    expect(big[0].spec.containerId).toBe(small[0].spec.containerId); // the warm one ran it, then was retired
    expect(big[1].spec.containerId).not.toBe(big[0].spec.containerId);
    expect(await gone(big[0].spec.containerId)).toBe(true);
  });
});

test("nothing secret in the agent's environment or argv (what any process in the sandbox can read of PID 1)", async () => {
  // A pool container is exactly what a handler would share a sandbox with.
  const o = await sandbox.validate({ source: fixture('good_sync.py'), fileName: 'good_sync.py', payloads: [{}] });
  expect(o.status).toBe('ok');
  // The pool's next warm container (not the one just used, which is being removed).
  let warm: Docker.ContainerInfo | undefined;
  for (const until = Date.now() + 20000; !warm && Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
    const list = await docker.listContainers({ filters: { label: ['taskflow.kind=validation'], status: ['running'] } });
    warm = list.find((c) => !c.Id.startsWith(o.spec.containerId));
  }
  expect(warm).toBeDefined();
  const c = docker.getContainer(warm!.Id);
  const read = async (file: string): Promise<string> => {
    const exec = await c.exec({
      Cmd: ['/usr/bin/python3.11', '-c', `import sys; sys.stdout.write(open("${file}", "rb").read().decode().replace("\\0", "\\n"))`],
      User: '65534:65534',
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await exec.start({});
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (d: Buffer) => chunks.push(d));
    docker.modem.demuxStream(stream, out, new PassThrough());
    await new Promise<void>((resolve) => stream.on('end', () => resolve()));
    return Buffer.concat(chunks).toString('utf8');
  };
  const environ = (await read('/proc/1/environ'))
    .split('\n')
    .filter(Boolean)
    .map((kv) => kv.split('=')[0]);
  expect(new Set(environ)).toEqual(new Set(['PATH', 'LANG', 'HOSTNAME', 'HOME']));
  const argv = await read('/proc/1/cmdline');
  expect(argv).toMatch(/python3\.11\s+-I\s+-S\s+-B\s+\/opt\/taskflow\/agent\.py/);
  expect(argv).not.toMatch(/[0-9a-f]{32}/); // no key, no token
});

describe('outcome causes are exact', () => {
  test('PID 1 killed (exit 137, no OOM from the engine) is a crash, not a memory-limit failure', async () => {
    const src = 'import time\n\ndef handler(payload):\n    time.sleep(payload["s"])\n    return {}\n';
    const key = { owner: 'bob', sha256: sha256(src) };
    const first = await sandbox.runKeyed(key, { source: src, fileName: 'sleepy.py', payloads: [{ s: 0 }] });
    expect(first.status).toBe('ok');
    // The same keyed container serves the next run; someone outside SIGKILLs its PID 1 meanwhile.
    const running = sandbox.runKeyed(key, { source: src, fileName: 'sleepy.py', payloads: [{ s: 20 }] });
    await new Promise((r) => setTimeout(r, 1000));
    await docker.getContainer(first.spec.containerId).kill({ signal: 'SIGKILL' });
    const o = await running;
    expect(o.spec.containerId).toBe(first.spec.containerId);
    expect(o.status).toBe('crashed');
    expect(o.exit).toEqual({ code: 137, oomKilled: false, description: 'PID 1 was killed by SIGKILL' });
    expect(runFindings(o, config.taskLimits).map((f) => f.code)).toEqual(['crashed']);
  });

  test("an OOM kill Docker does not report is found in the kernel's record", async () => {
    // Under runsc Docker sometimes leaves OOMKilled false after a memory-cgroup kill; the kernel's log
    // of it names the container's cgroup, which is what describeExit falls back to.
    const spec = containerSpec(sandbox.image, 'runsc', config.sandbox.limits, { [LABEL_INSTANCE]: instanceId() });
    const make = (code: string) =>
      docker.createContainer({ ...spec, Cmd: ['/usr/bin/python3.11', '-c', code], OpenStdin: false, AttachStdin: false });
    const [bomb, calm] = await Promise.all([make('x = bytearray(1 << 30)'), make('pass')]);
    try {
      await Promise.all([bomb.start(), calm.start()]);
      expect((await bomb.wait()).StatusCode).toBe(137);
      expect((await calm.wait()).StatusCode).toBe(0);
      expect(kernelRecordsOomKill(bomb.id)).toBe(true);
      expect(kernelRecordsOomKill(calm.id)).toBe(false);
    } finally {
      await Promise.all([bomb.remove({ force: true }), calm.remove({ force: true })]);
    }
  });

  test('exit statuses name what happened to PID 1', () => {
    expect(describeExitCode(159)).toBe('PID 1 was killed by SIGSYS'); // a seccomp KILL on the agent
    expect(describeExitCode(137)).toBe('PID 1 was killed by SIGKILL');
    expect(describeExitCode(157)).toBe('PID 1 was killed by SIGIO');
    expect(describeExitCode(1)).toBe('exited with status 1');
  });
});
