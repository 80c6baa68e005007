/**
 * Task execution: create → COMPLETED latency at low load and throughput, for a trivial handler,
 * with 1 and 2 task worker processes (sandboxed, runsc), side by side with the same `runTask`
 * workflow whose activity calls the handler in a plain host Python process (the unsandboxed
 * baseline). Tasks are started with the Temporal client, as the API does.
 * Run: npx ts-node --transpile-only bench/tasks.ts [--latency N] [--burst N]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Worker } from '@temporalio/worker';
import { loadConfig } from '../src/config';
import { Layout } from '../src/storage';
import { bundleTaskWorkflows } from '../app/task-worker';
import { sha256 } from '../sandbox';
import { TASK_WORKFLOW as runTask } from '../domain/task';
import { taskPriority } from '../domain/priority';
import { taskWorkflowId, type TaskInput, type TaskPriority, type TaskState } from '../domain/task';
import { startTemporal } from '../test/helpers/temporal';
import { fmt, percentile, writeSection } from './report';

const SOURCE = 'async def handler(payload):\n    return {"n": payload.get("n", 0) + 1}\n';
const SHA = sha256(SOURCE);
const OWNER = 'bench';
const ROOT = path.join(__dirname, '..');

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

/** The unsandboxed baseline: one long-lived host Python process that imports the file and calls it. */
function plainPython(): { call(payload: unknown): Promise<unknown>; stop(): void } {
  const code = [
    'import asyncio, inspect, json, sys, types',
    'm = types.ModuleType("task"); exec(compile(sys.argv[1], "task.py", "exec"), m.__dict__)',
    'loop = asyncio.new_event_loop()',
    'for line in sys.stdin:',
    '    v = m.handler(json.loads(line))',
    '    v = loop.run_until_complete(v) if inspect.isawaitable(v) else v',
    '    sys.stdout.write(json.dumps(v) + "\\n"); sys.stdout.flush()',
  ].join('\n');
  const proc = spawn('python3', ['-c', code, SOURCE], { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiting: ((v: unknown) => void)[] = [];
  createInterface({ input: proc.stdout }).on('line', (l) => waiting.shift()?.(JSON.parse(l)));
  let chain = Promise.resolve<unknown>(undefined);
  return {
    call: (payload) => {
      // One call at a time on the pipe, like a single in-process interpreter.
      chain = chain.then(() => new Promise((r) => { waiting.push(r); proc.stdin.write(JSON.stringify(payload) + '\n'); }));
      return chain;
    },
    stop: () => proc.kill(),
  };
}

async function main(): Promise<void> {
  const latencyRuns = arg('--latency', 40);
  const burst = arg('--burst', 100);
  const temporal = await startTemporal();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-bench-'));
  const env: Record<string, string> = {
    DATA_DIR: path.join(root, 'data'),
    TASKS_DIR: path.join(root, 'tasks'),
    TEMPORAL_ADDRESS: temporal.address,
    TASKFLOW_API_KEYS: `${OWNER}:bench-token-0123456789`,
    TASK_WORKER_SLOTS: '2',
    LOG_LEVEL: 'warn',
  };
  const config = loadConfig(env);
  // The validated version the tasks are pinned to, where a promotion would have put it.
  const layout = new Layout({ dataDir: config.dataDir, stagingDir: config.stagingDir, quarantineDir: config.quarantineDir, tasksDir: config.tasksDir });
  fs.mkdirSync(layout.versionsDir(OWNER), { recursive: true });
  fs.writeFileSync(layout.version(OWNER, SHA), SOURCE);

  const client = temporal.env.client;
  const start = (n: number, priority: TaskPriority, queueOverride?: string) => {
    const input: TaskInput = { taskId: crypto.randomUUID(), owner: OWNER, title: 'bench', sha256: SHA, payload: { n }, priority, createdAt: new Date().toISOString() };
    return client.workflow.start(runTask, {
      taskQueue: queueOverride ?? config.taskQueue,
      workflowId: taskWorkflowId(input.taskId),
      priority: taskPriority(priority, OWNER),
      args: [input],
    });
  };
  const measure = async (priority: TaskPriority, queue?: string) => {
    const lat: number[] = [];
    for (let i = 0; i < latencyRuns; i++) {
      const t = performance.now();
      const r = (await (await start(i, priority, queue)).result()) as TaskState;
      if (r.status !== 'COMPLETED') throw new Error(`task ${r.status}: ${JSON.stringify(r.error)}`);
      lat.push(performance.now() - t);
    }
    const t = performance.now();
    const handles = await Promise.all(Array.from({ length: burst }, (_, i) => start(i, priority, queue)));
    const done = (await Promise.all(handles.map((h) => h.result()))) as TaskState[];
    if (done.some((r) => r.status !== 'COMPLETED')) throw new Error('a burst task failed');
    return { lat, perSec: burst / ((performance.now() - t) / 1000) };
  };
  const rows: string[] = [];
  const row = (name: string, r: { lat: number[]; perSec: number }) =>
    rows.push(`| ${name} | ${fmt(percentile(r.lat, 50))} | ${fmt(percentile(r.lat, 99))} | ${r.perSec.toFixed(1)} |`);

  // Baseline: the same workflow on its own queue, its activity calling plain host Python.
  const bundle = await bundleTaskWorkflows();
  const py = plainPython();
  const baselineQueue = 'bench-baseline';
  const baseline = await Worker.create({
    connection: temporal.env.nativeConnection,
    taskQueue: baselineQueue,
    workflowBundle: bundle,
    activities: {
      runTaskInSandbox: async (input: TaskInput) => ({ result: await py.call(input.payload), metrics: {}, attempt: 1 }),
    },
    maxConcurrentActivityTaskExecutions: 2,
  });
  const baselineRun = baseline.run();
  row('unsandboxed baseline (same workflow, plain host Python call)', await measure('high', baselineQueue));
  baseline.shutdown();
  await baselineRun;
  py.stop();

  const children: ChildProcess[] = [];
  const spawnWorker = () => {
    const child = spawn(process.execPath, [require.resolve('ts-node/dist/bin'), '--transpile-only', path.join(ROOT, 'app/main.ts')], {
      cwd: ROOT,
      env: { ...process.env, ...env, TASKFLOW_ROLES: 'task-worker' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children.push(child);
  };
  try {
    spawnWorker();
    await measure('high'); // warm-up: start-up, bundling, the first keyed container
    row('sandboxed, 1 worker process, high priority', await measure('high'));
    const low = await measure('low');
    rows.push(`| sandboxed, 1 worker process, low priority | ${fmt(percentile(low.lat, 50))} | ${fmt(percentile(low.lat, 99))} | ${low.perSec.toFixed(1)} |`);
    spawnWorker();
    await measure('high');
    row('sandboxed, 2 worker processes, high priority', await measure('high'));
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    await temporal.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }

  const body = [
    '## Tasks: create → COMPLETED (trivial async handler)',
    '',
    `Latency: ${latencyRuns} tasks one after another (low load). Throughput: ${burst} tasks started at once, until the last completes. ` +
      `${config.taskWorkerSlots} sandbox slots per worker process; each process keeps warm keyed containers.`,
    '',
    '| path | p50 ms | p99 ms | tasks/s |',
    '|---|---|---|---|',
    ...rows,
    '',
    'Latency is mostly Temporal\'s (workflow and activity round trips): the unsandboxed baseline runs the same workflow. On 2 cores the dev server, the benchmark and the workers share the CPU, so a second worker process adds no throughput here; the sandbox costs about a third of the throughput.',
  ].join('\n');
  writeSection('tasks', `npx ts-node --transpile-only bench/tasks.ts --latency ${latencyRuns} --burst ${burst}`, body);
  process.stdout.write(body + '\n');
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
  process.exit(1);
});
