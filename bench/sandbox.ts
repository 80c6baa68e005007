/**
 * Cold `docker run --rm`-style execution vs warm pool containers, static checks in the long-lived checker
 * container vs a fresh one, and warm keyed calls (async and sync handler) against their floor: the same
 * handler in host Python over pipes, and the agent's bare round trip over Docker's attach stream.
 * Run: bash scripts/bench.sh sandbox [--runs N] [--calls N] [--no-write]
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import Docker from 'dockerode';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { createSandbox, sha256, type RunOutcome } from '../sandbox';
import { AgentContainer } from '../sandbox/agent-container';
import { instanceId } from '../sandbox/leftovers';
import { cgroupUsageKiB, containerProcesses, runscMemory, type ProcessMemory } from './host-memory';
import { fmt, percentile, writeSection } from './report';

const SOURCE = 'async def handler(payload):\n    return {"n": payload.get("n", 0) + 1}\n';
const SYNC_SOURCE = 'def handler(payload):\n    return {"n": payload.get("n", 0) + 1}\n';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

function assertOk(o: RunOutcome): void {
  if (o.status !== 'ok') throw new Error(`benchmark run failed (${o.status}): ${JSON.stringify(o.payloads)}`);
}

async function timed(fn: () => Promise<RunOutcome>): Promise<number> {
  const t = process.hrtime.bigint();
  assertOk(await fn());
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** The floor for a keyed call: the same handler in a plain host Python process, one JSON line each way over pipes. */
function hostPython(source: string): { call(payload: unknown): Promise<unknown>; stop(): void } {
  const code = [
    'import asyncio, inspect, json, sys, types',
    'm = types.ModuleType("task"); exec(compile(sys.argv[1], "task.py", "exec"), m.__dict__)',
    'loop = asyncio.new_event_loop()',
    'for line in sys.stdin:',
    '    v = m.handler(json.loads(line))',
    '    v = loop.run_until_complete(v) if inspect.isawaitable(v) else v',
    '    sys.stdout.write(json.dumps(v) + "\\n"); sys.stdout.flush()',
  ].join('\n');
  const proc = spawn('/usr/bin/python3.11', ['-I', '-c', code, source], { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiting: ((v: unknown) => void)[] = [];
  createInterface({ input: proc.stdout }).on('line', (l) => waiting.shift()?.(JSON.parse(l)));
  return {
    call: (payload) =>
      new Promise((r) => {
        waiting.push(r);
        proc.stdin.write(JSON.stringify(payload) + '\n');
      }),
    stop: () => proc.kill(),
  };
}

async function timedCall(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function main(): Promise<void> {
  const runs = arg('--runs', 10);
  const calls = arg('--calls', 500);
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'warn', SANDBOX_CHECKER_CONTAINERS: '1' });
  const log = createLogger('warn');
  const req = (n: number) => ({ source: SOURCE, fileName: 'bench.py', payloads: [{ n }] });
  const row = (name: string, v: number[]) =>
    `| ${name} | ${v.length} | ${fmt(percentile(v, 50))} | ${fmt(percentile(v, 99))} | ${fmt(Math.min(...v))} |`;
  const rows: string[] = [];
  let perCall: number[];
  let perSyncCall: number[];
  let ping: number[];
  let first: number;
  let idle: { processes: ProcessMemory[]; cgroupKiB?: number };
  let cold: number[];
  let warm: number[];
  const sandbox = await createSandbox(config.sandbox, log, { validationPool: true, keyedLimits: config.taskLimits });
  try {
    cold = [];
    for (let i = 0; i < runs; i++) cold.push(await timed(() => sandbox.runCold(req(i))));

    // Warm: wait until the pool has refilled before each run, as a steady-state server would be.
    warm = [];
    for (let i = 0; i < runs; i++) {
      await new Promise((r) => setTimeout(r, 2500));
      warm.push(await timed(() => sandbox.validate(req(i))));
    }

    // Static checks in the long-lived checker container, 300 ms apart: steady state, where the next checker
    // process has started (back to back, each check would also wait for that interpreter's start-up).
    const checks: number[] = [];
    for (let i = 0; i < Math.max(runs, calls / 10); i++) {
      await new Promise((r) => setTimeout(r, 300));
      checks.push(await timedCall(() => sandbox.check({ source: SOURCE, fileName: `bench_${i}.py` })));
    }

    // Keyed warm container: the same owner and file version, call after call. Let the pool
    // refills above finish first: a container start eats a core for about a second.
    await new Promise((r) => setTimeout(r, 4000));
    const key = { owner: 'bench', sha256: sha256(SOURCE) };
    first = await timed(() => sandbox.runKeyed(key, req(0)));
    perCall = [];
    for (let i = 0; i < calls; i++) perCall.push(await timed(() => sandbox.runKeyed(key, req(i))));
    const syncKey = { owner: 'bench', sha256: sha256(SYNC_SOURCE) };
    perSyncCall = [];
    let last: RunOutcome | undefined;
    for (let i = 0; i < calls; i++) {
      perSyncCall.push(
        await timed(
          async () => (last = await sandbox.runKeyed(syncKey, { source: SYNC_SOURCE, fileName: 'bench_sync.py', payloads: [{ n: i }] })),
        ),
      );
    }
    // What a keyed container, idle after a run (agent and loaded child, stopped between runs), costs the
    // host. One more call: the one before may have been its container's last use (SANDBOX_KEYED_MAX_USES).
    last = await sandbox.runKeyed(syncKey, { source: SYNC_SOURCE, fileName: 'bench_sync.py', payloads: [{ n: 0 }] });
    await new Promise((r) => setTimeout(r, 3000));
    const docker = new Docker({ socketPath: config.sandbox.dockerSocket });
    const idleId = last!.spec.containerId;
    const processes = containerProcesses(idleId);
    const sandboxPid = processes.find((p) => p.role === 'sandbox')?.pid;
    idle = { processes, cgroupKiB: sandboxPid === undefined ? undefined : cgroupUsageKiB(sandboxPid) };

    // Where the time goes: the agent's own round trip over Docker's attach stream (a ping: no child, no handler)...
    const agent = await AgentContainer.start(docker, {
      image: sandbox.image,
      runtime: sandbox.runtime,
      limits: config.taskLimits,
      kind: 'keyed',
      instance: instanceId(),
      warm: true,
      log,
    });
    try {
      ping = [];
      for (let i = 0; i < calls; i++) ping.push(await timedCall(() => agent.request({ type: 'ping' }, 'pong')));
    } finally {
      await agent.destroy();
    }
    rows.push(
      row('cold: create + start container, agent, load, call, remove', cold),
      row('warm validation: pooled single-use container, load, call, remove', warm),
      row('static check: long-lived checker container, fresh checker process', checks),
      row('warm keyed call: same owner + sha, loaded async handler', perCall),
      row('warm keyed call: same owner + sha, loaded sync handler', perSyncCall),
      row('agent ping over the attach stream (no handler)', ping),
    );
  } finally {
    await sandbox.close();
  }

  // ...and the floor: the same handler in host Python over pipes, no sandbox, no Docker.
  const host = hostPython(SOURCE);
  const hostCalls: number[] = [];
  try {
    for (let i = 0; i < calls; i++) hostCalls.push(await timedCall(() => host.call({ n: i })));
  } finally {
    host.stop();
  }
  rows.push(row('floor: the async handler in host Python over pipes (no sandbox)', hostCalls));

  // Static checks the old way: a fresh container per check.
  const fresh = await createSandbox({ ...config.sandbox, checkerContainers: 0 }, log, {});
  const freshChecks: number[] = [];
  try {
    for (let i = 0; i < runs; i++) freshChecks.push(await timedCall(() => fresh.check({ source: SOURCE, fileName: `bench_${i}.py` })));
  } finally {
    await fresh.close();
  }
  rows.splice(3, 0, row('static check: a fresh container per check (SANDBOX_CHECKER_CONTAINERS=0)', freshChecks));

  const asyncP50 = percentile(perCall, 50);
  const syncP50 = percentile(perSyncCall, 50);
  const hostP50 = percentile(hostCalls, 50);
  const pingP50 = percentile(ping, 50);
  const mib = (kib: number) => (kib / 1024).toFixed(1);
  const memRow = (name: string, ps: ProcessMemory[]) =>
    `| ${name} | ${ps.length} | ${mib(ps.reduce((a, p) => a + p.rssKiB, 0))} | ${mib(ps.reduce((a, p) => a + p.pssKiB, 0))} | ` +
    `${mib(ps.reduce((a, p) => a + p.privateKiB, 0))} |`;
  const total = runscMemory(idle.processes);
  const roles = (...r: ProcessMemory['role'][]) => idle.processes.filter((p) => r.includes(p.role));
  const body = [
    '## Sandbox: cold vs warm, checks, keyed calls (trivial handler, runsc)',
    '',
    '| path | runs | p50 ms | p99 ms | min ms |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    `First result on a keyed container (load included): ${fmt(first)} ms. Warm validation sandbox phase is ${(percentile(cold, 50) / percentile(warm, 50)).toFixed(0)}× faster than cold at p50.`,
    `Goal: warm keyed call p50 ≤ 1.5 ms, async and sync alike — measured ${fmt(asyncP50)} ms async, ${fmt(syncP50)} ms sync ` +
      `(${(asyncP50 / hostP50).toFixed(1)}× and ${(syncP50 / hostP50).toFixed(1)}× the host-Python floor of ${fmt(hostP50)} ms).`,
    `Where the time goes (p50): the agent's bare round trip over Docker's attach stream is ${fmt(pingP50)} ms; the rest of a keyed call ` +
      `(${fmt(asyncP50 - pingP50)} ms async, ${fmt(syncP50 - pingP50)} ms sync) is the agent handing the payload to its child interpreter and back ` +
      '(pipes, through the sandbox) and the handler itself.',
    '',
    `### An idle warm keyed container's host memory (${sandbox.runsc ? `runsc ${sandbox.runsc.version}, ${sandbox.runsc.platform}` : sandbox.runtime})`,
    '',
    '| processes | count | RSS MiB | PSS MiB | private MiB |',
    '|---|---|---|---|---|',
    memRow('runsc sandbox (gVisor kernel)', roles('sandbox')),
    memRow('runsc gofer (file server)', roles('gofer')),
    memRow('systrap stubs (host processes behind sandboxed address spaces)', roles('stub')),
    memRow('**runsc in all** (the goal: RSS ≤ 30 MB)', roles('sandbox', 'gofer', 'stub')),
    memRow('containerd shim (apart)', roles('shim')),
    '',
    `The container's memory cgroup holds ${idle.cgroupKiB === undefined ? 'n/a' : `${mib(idle.cgroupKiB)} MiB`} (everything charged to it once: ` +
      `the sandbox's memory file, Go heaps, page cache). RSS counts pages shared between processes (the runsc binary's text in ` +
      `sandbox and gofer, the memory file in sandbox and stubs) once per process; PSS shares them out (also with the pool's other ` +
      `containers running the same binary); private is what removing the container gives back (${mib(total.privateKiB)} MiB).`,
  ].join('\n');
  process.stdout.write(body + '\n');
  if (!process.argv.includes('--no-write')) writeSection('sandbox', `bash scripts/bench.sh sandbox --runs ${runs} --calls ${calls}`, body);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
  process.exit(1);
});
