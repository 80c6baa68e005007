/**
 * Fairness: owner B's upload → VALIDATED and create → COMPLETED latency when idle and while owner A
 * floods (A keeps a fixed number of uploads, then tasks, in flight at all times: each of A's clients
 * starts the next as soon as its last one is done; B's are made one after another meanwhile), with
 * Temporal's fairness on (TaskFlow's setting) and off (first come first served) on the same
 * machine. Real HTTP API, one validation worker (concurrency 2), one task worker (2 slots), runsc.
 * Quotas are raised so the flood is not refused. The interesting numbers are the ratios.
 * Run: bash scripts/bench.sh fairness [--flood N] [--task-flood N] [--runs N]
 * (--flood / --task-flood: how many of A's uploads / tasks are in flight while B measures)
 */
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createApp } from '../src/api/app';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { openStorage } from '../src/storage';
import { TemporalTaskService } from '../src/tasks/temporal-task-service';
import { ValidationService } from '../src/validation/service';
import { startTaskWorkers } from '../app/task-worker';
import { createValidationWorker } from '../app/validation-worker';
import { createSandbox } from '../sandbox';
import { startTemporal } from '../test/helpers/temporal';
import { fmt, percentile, writeSection, benchEnv } from './report';

const SOURCE = 'async def handler(payload):\n    return {"n": payload.get("n", 0) + 1}\n';
const A = 'flooder-token-0123456789abcdef';
const B = 'bystander-token-0123456789abcdef';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

interface Latencies {
  validationIdle: number[];
  validationFlood: number[];
  taskIdle: number[];
  taskFlood: number[];
  /** How many of A's validations / tasks finished while B measured under the flood. */
  validationsOfA: number;
  tasksOfA: number;
}

async function runMode(fair: boolean, flood: number, taskFlood: number, runs: number): Promise<Latencies> {
  const temporal = await startTemporal(fair ? {} : { dynamicConfig: { 'matching.enableFairness': false } });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-bench-'));
  const config = loadConfig({
    DATA_DIR: root,
    TASKS_DIR: path.join(root, 'tasks'),
    TEMPORAL_ADDRESS: temporal.address,
    TASKFLOW_API_KEYS: `flooder:${A},bystander:${B}`,
    TASK_WORKER_SLOTS: '2',
    ...benchEnv(),
    QUOTA_FILE_NAMES: '100000',
    LOG_LEVEL: 'error',
  });
  const log = createLogger('error');
  const storage = await openStorage(config, log);
  const sandbox = await createSandbox(config.sandbox, log, { validationPool: true, keyedLimits: config.taskLimits });
  const client = temporal.env.client;
  const validationWorker = await createValidationWorker({ config, sandbox, storage, connection: temporal.env.nativeConnection, log });
  const validationRun = validationWorker.run();
  const taskWorkers = await startTaskWorkers({
    config,
    sandbox,
    connection: temporal.env.nativeConnection,
    client,
    log,
    loadVersion: (owner, title, sha) => storage.files.loadVersion(owner, title, sha),
    taskFinished: (taskId, status, bytes) => storage.tasks.finished(taskId, status, bytes),
  });
  const validations = new ValidationService({ config, storage, client, log });
  const app = createApp({
    config,
    keys: config.apiKeys,
    validations,
    tasks: new TemporalTaskService({ client, config, log, records: storage.tasks }),
    log,
    temporalHealthy: async () => true,
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const auth = (token: string) => ({ Authorization: `Bearer ${token}` });

  let n = 0;
  const uploadOnly = async (token: string): Promise<string> => {
    const form = new FormData();
    form.append('file', new Blob([SOURCE], { type: 'text/x-python' }), 'bench.py');
    const res = await fetch(`${base}/tasks/upload_file?file_name=f_${n++ % 500}`, { method: 'POST', body: form, headers: auth(token) });
    if (res.status !== 202) throw new Error(`upload: HTTP ${res.status} ${await res.text()}`);
    return ((await res.json()) as { status_url: string }).status_url;
  };
  // Every client waits with the long poll for the final status: polling clients would load the workers
  // with queries, which is not what this bench is about.
  const finalOf = async (token: string, url: string): Promise<void> => {
    for (;;) {
      const res = await fetch(`${base}${url}?wait=30&until=final`, { headers: auth(token) });
      const s = (await res.json()) as { status: string; findings: unknown };
      if (s.status === 'VALIDATED') return;
      if (s.status === 'REJECTED') throw new Error(`rejected: ${JSON.stringify(s.findings)}`);
    }
  };
  const validateOnce = async (token: string): Promise<number> => {
    const t = performance.now();
    await finalOf(token, await uploadOnly(token));
    return performance.now() - t;
  };
  const createTask = async (token: string, i: number): Promise<string> => {
    const res = await fetch(`${base}/tasks/`, {
      method: 'POST',
      headers: { ...auth(token), 'Content-Type': 'application/json' },
      body: JSON.stringify({ title: 'bench', payload: { n: i }, priority: 'low' }),
    });
    if (res.status !== 201) throw new Error(`create task: HTTP ${res.status} ${await res.text()}`);
    return ((await res.json()) as { task_id: string }).task_id;
  };
  const taskDone = async (token: string, id: string): Promise<void> => {
    for (;;) {
      const t = (await (await fetch(`${base}/tasks/${id}?wait=30&until=final`, { headers: auth(token) })).json()) as { status: string };
      if (t.status === 'COMPLETED') return;
      if (t.status === 'FAILED' || t.status === 'CANCELLED') throw new Error(`task ${t.status}`);
    }
  };
  const taskOnce = async (token: string): Promise<number> => {
    const t = performance.now();
    await taskDone(token, await createTask(token, 1));
    return performance.now() - t;
  };
  /**
   * Runs `measure` while A keeps `inFlight` of `one` going (each of A's clients starts its next as soon as
   * its last is done), after giving A's backlog `rampMs` to build. Returns how many of A's finished meanwhile.
   */
  const underFlood = async (inFlight: number, one: () => Promise<void>, rampMs: number, measure: () => Promise<void>) => {
    let stop = false;
    let finished = 0;
    const clients = Array.from({ length: inFlight }, async () => {
      while (!stop) {
        await one();
        finished++;
      }
    });
    await new Promise((r) => setTimeout(r, rampMs));
    const before = finished;
    try {
      await measure();
    } finally {
      stop = true;
    }
    const during = finished - before;
    await Promise.all(clients);
    return during;
  };

  try {
    // Both owners have the file validated (and the first containers started) before measuring.
    for (const token of [A, B]) {
      const form = new FormData();
      form.append('file', new Blob([SOURCE], { type: 'text/x-python' }), 'bench.py');
      const res = await fetch(`${base}/tasks/upload_file?file_name=bench`, { method: 'POST', body: form, headers: auth(token) });
      await finalOf(token, ((await res.json()) as { status_url: string }).status_url);
      await taskOnce(token);
    }
    const out: Latencies = {
      validationIdle: [],
      validationFlood: [],
      taskIdle: [],
      taskFlood: [],
      validationsOfA: 0,
      tasksOfA: 0,
    };
    for (let i = 0; i < runs; i++) {
      await new Promise((r) => setTimeout(r, 2000)); // the warm pool refills
      out.validationIdle.push(await validateOnce(B));
    }
    for (let i = 0; i < runs; i++) out.taskIdle.push(await taskOnce(B));

    out.validationsOfA = await underFlood(
      flood,
      async () => void (await validateOnce(A)),
      3000,
      async () => {
        for (let i = 0; i < runs; i++) out.validationFlood.push(await validateOnce(B));
      },
    );
    let t = 0;
    out.tasksOfA = await underFlood(
      taskFlood,
      async () => await taskDone(A, await createTask(A, t++)),
      2000,
      async () => {
        for (let i = 0; i < runs; i++) out.taskFlood.push(await taskOnce(B));
      },
    );
    return out;
  } finally {
    server.close();
    await taskWorkers.shutdown();
    validationWorker.shutdown();
    await validationRun;
    await sandbox.close();
    await temporal.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const flood = arg('--flood', 20);
  const taskFlood = arg('--task-flood', 40);
  const runs = arg('--runs', 5);
  const fair = await runMode(true, flood, taskFlood, runs);
  const fifo = await runMode(false, flood, taskFlood, runs);
  const p50 = (v: number[]) => percentile(v, 50);
  const row = (what: string, idle: (l: Latencies) => number[], busy: (l: Latencies) => number[], left: (l: Latencies) => number) =>
    [fair, fifo].map((l, i) => {
      const ratio = p50(busy(l)) / p50(idle(l));
      return `| ${what} | ${i === 0 ? 'on (TaskFlow)' : 'off (FIFO)'} | ${fmt(p50(idle(l)))} | ${fmt(p50(busy(l)))} | ${fmt(percentile(busy(l), 100))} | ${ratio.toFixed(1)}× | ${left(l)} |`;
    });
  const body = [
    "## Fairness: owner B's latency while owner A floods",
    '',
    `A keeps ${flood} uploads (then ${taskFlood} tasks) in flight at all times; meanwhile B makes ${runs} uploads (then ${runs} tasks) one after another.`,
    'One validation worker (concurrency 2), one task worker (2 slots); the same machine and code, the Temporal dev server with',
    "fairness on (TaskFlow's setting) and off. \"A's done meanwhile\" is how many of A's finished while B measured under the flood.",
    'Every client waits with the long poll `?wait=30&until=final`.',
    '',
    "| B's | fairness | idle p50 ms | under flood p50 ms | under flood max ms | ratio (p50) | A's done meanwhile |",
    '|---|---|---|---|---|---|---|',
    ...row(
      'upload → VALIDATED',
      (l) => l.validationIdle,
      (l) => l.validationFlood,
      (l) => l.validationsOfA,
    ),
    ...row(
      'task create → COMPLETED',
      (l) => l.taskIdle,
      (l) => l.taskFlood,
      (l) => l.tasksOfA,
    ),
  ].join('\n');
  process.stdout.write(body + '\n');
  writeSection('fairness', `bash scripts/bench.sh fairness --flood ${flood} --task-flood ${taskFlood} --runs ${runs}`, body);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
