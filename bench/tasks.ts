/**
 * Task execution for a trivial handler: create → COMPLETED latency and throughput, with the API and the
 * task workers in one process as app/main.ts runs them (eager workflow start; warm keyed containers, runsc).
 * Four paths:
 *   - unsandboxed baseline: the same `runTask` workflow on its own queue, its activity calling the handler in
 *     a plain host Python process; started (eagerly) and awaited with the Temporal client;
 *   - sandboxed, the same driver on TaskFlow's task queue (the real activity);
 *   - sandboxed over HTTP: POST /tasks/, then the long poll `GET /tasks/{id}?wait=&until=final` to the end, and
 *     the same following each status change (`until=change`, one workflow Update per change).
 * The engine floor is measured in the same run (bench/floor.ts).
 * Run: bash scripts/bench.sh tasks [--latency N] [--burst N] [--floor-runs N]
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { createApp } from '../src/api/app';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { openStorage, sha256Hex } from '../src/storage';
import { TemporalTaskService } from '../src/tasks/temporal-task-service';
import { ValidationService } from '../src/validation/service';
import { WorkflowStarter } from '../src/workflow-starter';
import { bundleTaskWorkflows, startTaskWorkers } from '../app/task-worker';
import { createSandbox, sha256 } from '../sandbox';
import { TASK_WORKFLOW, taskWorkflowId, type TaskInput, type TaskState } from '../domain/task';
import type { WaitUntil } from '../domain/wait';
import { taskPriority } from '../domain/priority';
import { startTemporal } from '../test/helpers/temporal';
import { floorRows, measureDefaultFloor, measureFloor, ratio, type Floor } from './floor';
import { fmt, percentile, quiet, writeSection, benchEnv } from './report';

const SOURCE = 'async def handler(payload):\n    return {"n": payload.get("n", 0) + 1}\n';
const SHA = sha256(SOURCE);
const OWNER = 'bench';
const TOKEN = 'bench-token-0123456789abcdef';
const FINAL = ['COMPLETED', 'FAILED', 'CANCELLED'];

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
      chain = chain.then(
        () =>
          new Promise((r) => {
            waiting.push(r);
            proc.stdin.write(JSON.stringify(payload) + '\n');
          }),
      );
      return chain;
    },
    stop: () => proc.kill(),
  };
}

interface PathResult {
  lat: number[];
  perSec: number;
}

/** `latency` runs one after another, then `burst` at once until the last one finishes. */
async function measure(latency: number, burst: number, once: (n: number) => Promise<void>): Promise<PathResult> {
  for (let i = 0; i < 5; i++) await once(i); // warm-up: workflow code cached, keyed containers started
  const lat: number[] = [];
  for (let i = 0; i < latency; i++) {
    const t = performance.now();
    await once(i);
    lat.push(performance.now() - t);
  }
  const t = performance.now();
  await Promise.all(Array.from({ length: burst }, (_, i) => once(i)));
  return { lat, perSec: burst / ((performance.now() - t) / 1000) };
}

async function main(): Promise<void> {
  const latencyRuns = arg('--latency', 50);
  const burst = arg('--burst', 200);
  const floorRuns = arg('--floor-runs', 30);
  const temporal = await startTemporal();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-bench-'));
  const config = loadConfig({
    ...benchEnv(),
    // One owner's high tasks are the measurement here, not a flood to bound.
    QUOTA_HIGH_TASKS_IN_FLIGHT: '100000',
    DATA_DIR: path.join(root, 'data'),
    TASKS_DIR: path.join(root, 'tasks'),
    TEMPORAL_ADDRESS: temporal.address,
    TASKFLOW_API_KEYS: `${OWNER}:${TOKEN}`,
    LOG_LEVEL: 'warn',
  });
  const log = createLogger('warn');
  const storage = await openStorage(config, log);
  // The validated version the tasks are pinned to, stored as an upload and its promotion store it.
  const benchId = '0'.repeat(32);
  await storage.records.create(
    {
      validation_id: benchId,
      owner: OWNER,
      file_name: 'bench',
      bytes: Buffer.from(SOURCE),
      sha256: sha256Hex(Buffer.from(SOURCE)),
      workflow_id: 'bench',
    },
    async () => undefined,
  );
  const now = new Date().toISOString();
  await storage.files.promote(benchId, {
    validation_id: benchId,
    file_name: 'bench',
    owner: OWNER,
    sha256: SHA,
    status: 'VALIDATED',
    findings: [],
    metrics: { size_bytes: SOURCE.length },
    created_at: now,
    finished_at: now,
  });

  const rows: string[] = [];
  const row = (name: string, r: PathResult) =>
    rows.push(`| ${name} | ${fmt(percentile(r.lat, 50))} | ${fmt(percentile(r.lat, 99))} | ${r.perSec.toFixed(1)} |`);
  const eagerClient = new Client({ connection: temporal.env.nativeConnection, namespace: temporal.namespace });
  const bundle = await bundleTaskWorkflows();
  const input = (n: number): TaskInput => ({
    taskId: crypto.randomUUID(),
    owner: OWNER,
    title: 'bench',
    sha256: SHA,
    payload: { n },
    priority: 'high',
    createdAt: new Date().toISOString(),
  });
  const viaClient = (taskQueue: string) => async (n: number) => {
    const i = input(n);
    const h = await eagerClient.workflow.start(TASK_WORKFLOW, {
      taskQueue,
      workflowId: taskWorkflowId(i.taskId),
      args: [i],
      priority: taskPriority(i.priority, OWNER),
      requestEagerStart: true,
    });
    const r = (await h.result()) as TaskState;
    if (r.status !== 'COMPLETED') throw new Error(`task ${r.status}: ${JSON.stringify(r.error)}`);
  };

  let baseline: PathResult;
  let sandboxed: PathResult;
  let api: PathResult;
  let apiChanges: PathResult;
  let tuned: Floor;
  const sandbox = await createSandbox(config.sandbox, log, { keyedLimits: config.taskLimits });
  try {
    // The floor first, on a quiet machine, as the latency runs find it (afterwards the machine is still
    // busy removing the burst's containers).
    tuned = await measureFloor(temporal, floorRuns);
    // 1. Baseline: the same workflow, its activity calling plain host Python.
    const py = plainPython();
    const baselineQueue = 'bench-baseline';
    const baselineWorker = await Worker.create({
      connection: temporal.env.nativeConnection,
      taskQueue: baselineQueue,
      workflowBundle: bundle,
      activities: {
        runTaskInSandbox: async (i: TaskInput) => ({
          result: await py.call(i.payload),
          metrics: {},
          attempt: 1,
          startedAt: new Date().toISOString(),
        }),
        // The workflow's last step notes the task's end in its row; these tasks have none (started on Temporal directly).
        recordTaskEnd: async () => undefined,
      },
      maxConcurrentActivityTaskExecutions: config.taskWorkerSlots,
    });
    const baselineRun = baselineWorker.run();
    try {
      baseline = await measure(latencyRuns, burst, viaClient(baselineQueue));
    } finally {
      baselineWorker.shutdown();
      await baselineRun;
      py.stop();
    }

    // 2 and 3. Sandboxed: task workers, API and eager starts in this process, as app/main.ts wires them.
    const workers = await startTaskWorkers({
      config,
      sandbox,
      connection: temporal.env.nativeConnection,
      client: temporal.env.client,
      log,
      loadVersion: (owner, title, sha) => storage.files.loadVersion(owner, title, sha),
      taskFinished: (taskId, status, bytes) => storage.tasks.finished(taskId, status, bytes),
      workflowBundle: bundle,
    });
    const starter = new WorkflowStarter(temporal.env.client);
    starter.enableEager(eagerClient, [config.taskQueue]);
    const validations = new ValidationService({ config, storage, client: temporal.env.client, log, starter });
    const tasks = new TemporalTaskService({ client: temporal.env.client, config, log, records: storage.tasks, starter });
    // POST /tasks/ resolves the title through the validation records: the bench file is "validated" (no HTTP upload needed).
    validations.resolveForTask = async (owner, title) => ({ owner, title, sha256: SHA, validationId: 'bench' });
    const app = createApp({ config, keys: config.apiKeys, validations, tasks, log, temporalHealthy: async () => true });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const headers = { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' };
    const viaApi = (until: WaitUntil) => async (n: number) => {
      const res = await fetch(`${base}/tasks/`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ title: 'bench', payload: { n }, priority: 'high' }),
      });
      if (res.status !== 201) throw new Error(`create: HTTP ${res.status} ${await res.text()}`);
      const created = (await res.json()) as { task_id: string; status: string };
      let known = created.status;
      for (;;) {
        const t = (await (
          await fetch(`${base}/tasks/${created.task_id}?wait=30&known_status=${known}&until=${until}`, { headers })
        ).json()) as TaskState;
        if (FINAL.includes(t.status)) {
          if (t.status !== 'COMPLETED') throw new Error(`task ${t.status}: ${JSON.stringify(t.error)}`);
          return;
        }
        known = t.status;
      }
    };
    try {
      sandboxed = await measure(latencyRuns, burst, viaClient(config.taskQueue));
      api = await measure(latencyRuns, burst, viaApi('final'));
      apiChanges = await measure(latencyRuns, burst, viaApi('change'));
    } finally {
      server.close();
      starter.disableEager();
      await workers.shutdown();
    }
  } finally {
    await sandbox.close();
    await temporal.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
  await quiet();
  const untuned = await measureDefaultFloor(floorRuns);

  row('unsandboxed baseline: runTask, plain host Python; Temporal client (eager start, result)', baseline);
  row('sandboxed: runTask, warm keyed runsc container; Temporal client (eager start, result)', sandboxed);
  row('sandboxed over HTTP: POST /tasks/, long poll GET /tasks/{id}?wait=30&until=final', api);
  row('sandboxed over HTTP: POST /tasks/, long poll following each change (until=change)', apiChanges);
  const p50 = percentile(api.lat, 50);
  const body = [
    '## Tasks: create → COMPLETED (trivial async handler; API and task workers in one process)',
    '',
    `Latency: ${latencyRuns} tasks one after another. Throughput: ${burst} tasks at once, until the last completes. ` +
      `${config.taskWorkerSlots} sandbox slots; warm keyed containers.`,
    '',
    '| path | p50 ms | p99 ms | tasks/s |',
    '|---|---|---|---|',
    ...rows,
    '',
    ...floorRows(tuned, untuned),
    '',
    `Goals: create → COMPLETED p50 ≤ 40 ms — measured ${fmt(p50)} ms over HTTP (${fmt(percentile(sandboxed.lat, 50))} ms with the Temporal client); ` +
      `≤ 0.4 × a one-activity workflow on a default dev server — measured ${ratio(p50, untuned.oneActivity)} ` +
      `(${ratio(p50, tuned.oneActivity)} of the same floor on the tuned server); sandboxed throughput ≥ 60 tasks/s — measured ` +
      `${sandboxed.perSec.toFixed(1)} (${api.perSec.toFixed(1)} over HTTP with until=final, ${apiChanges.perSec.toFixed(1)} following each change); ≥ 0.7 × the unsandboxed baseline — measured ` +
      `${ratio(sandboxed.perSec, baseline.perSec)}.`,
  ].join('\n');
  process.stdout.write(body + '\n');
  if (!process.argv.includes('--no-write')) {
    writeSection('tasks', `bash scripts/bench.sh tasks --latency ${latencyRuns} --burst ${burst} --floor-runs ${floorRuns}`, body);
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
  process.exit(1);
});
