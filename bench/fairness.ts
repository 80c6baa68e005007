/**
 * Fairness: owner B's upload → VALIDATED and create → COMPLETED latency when idle and while owner A
 * floods (A keeps a fixed number of uploads, then tasks, in flight at all times: each of A's clients
 * starts the next as soon as its last one is done; B's are made one after another meanwhile), with
 * Temporal's fairness on (TaskFlow's setting) and off (first come first served) on the same
 * machine. Real HTTP API, one validation worker (concurrency 2), one task worker (2 slots), runsc.
 * Quotas are raised so the flood is not refused. The interesting numbers are the ratios.
 *
 * With fairness on, three hostile floods of issue 18 follow, each against B's idle figures of the same run:
 * - checker flood: A uploads a valid 2 KB alias bomb (test/helpers/attacks.ts) one after another, at the
 *   default upload quota's pace, while B's uploads are measured (goal: ≤ 1.5× idle);
 * - idle-thread flood: A runs tasks of several versions of test/fixtures/tasks/idle_spinner.py (a thread
 *   that spins on after the handler returns) while B's CPU-bound tasks are measured (goal: ≤ 1.2× idle);
 * - cross-priority flood: A keeps --task-flood `high` tasks in flight while B's `low` tasks are measured
 *   (goal: a small multiple of idle; A's `high` beyond QUOTA_HIGH_TASKS_IN_FLIGHT is queued as `low`).
 * Run: bash scripts/bench.sh fairness [--flood N] [--task-flood N] [--runs N] [--spinners N]
 * (--flood / --task-flood: how many of A's uploads / tasks are in flight while B measures;
 * --spinners: how many versions of the idle spinner A runs)
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
import { QUOTA_DEFINITIONS } from '../src/quotas/definitions';
import { aliasBomb } from '../test/helpers/attacks';
import { fixture } from '../test/helpers/sandbox';
import { startTemporal } from '../test/helpers/temporal';
import { fmt, percentile, writeSection, benchEnv } from './report';

const SOURCE = 'async def handler(payload):\n    return {"n": payload.get("n", 0) + 1}\n';
/** B's CPU-bound task: a few hundred ms of pure Python arithmetic (quick with validation's empty payload). */
const CPU_SOURCE =
  'def handler(payload):\n    n = 0\n    for i in range(payload.get("n", 1000)):\n        n += i * i\n    return {"n": n % 1000}\n';
const CPU_N = 2_000_000;
/** A's checker flood runs at the default upload quota: one upload every this many ms. */
const CHECKER_FLOOD_EVERY_MS = 60_000 / QUOTA_DEFINITIONS.uploadsPerMinute.default;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const A = 'flooder-token-0123456789abcdef';
const B = 'bystander-token-0123456789abcdef';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

/** B's latencies idle and under one of A's floods, and how many of A's finished while B measured under it. */
interface Flood {
  idle: number[];
  flood: number[];
  ofA: number;
}

interface Latencies {
  validation: Flood;
  task: Flood;
  /** Issue 18's floods, measured with fairness on only. */
  hostile?: { checker: Flood; idleThread: Flood; crossPriority: Flood };
}

interface Options {
  flood: number;
  taskFlood: number;
  runs: number;
  spinners: number;
}

async function runMode(fair: boolean, { flood, taskFlood, runs, spinners }: Options): Promise<Latencies> {
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
  const uploadOnly = async (token: string, source = SOURCE, name = `f_${n++ % 500}`): Promise<string> => {
    const form = new FormData();
    form.append('file', new Blob([source], { type: 'text/x-python' }), 'bench.py');
    const res = await fetch(`${base}/tasks/upload_file?file_name=${name}`, { method: 'POST', body: form, headers: auth(token) });
    if (res.status !== 202) throw new Error(`upload: HTTP ${res.status} ${await res.text()}`);
    return ((await res.json()) as { status_url: string }).status_url;
  };
  // Every client waits with the long poll for the final status: polling clients would load the workers
  // with queries, which is not what this bench is about.
  const verdict = async (token: string, url: string): Promise<{ status: string; findings: unknown }> => {
    for (;;) {
      const res = await fetch(`${base}${url}?wait=30&until=final`, { headers: auth(token) });
      const s = (await res.json()) as { status: string; findings: unknown };
      if (s.status === 'VALIDATED' || s.status === 'REJECTED') return s;
    }
  };
  const finalOf = async (token: string, url: string): Promise<void> => {
    const s = await verdict(token, url);
    if (s.status === 'REJECTED') throw new Error(`rejected: ${JSON.stringify(s.findings)}`);
  };
  const validateOnce = async (token: string): Promise<number> => {
    const t = performance.now();
    await finalOf(token, await uploadOnly(token));
    return performance.now() - t;
  };
  const createTask = async (token: string, i: number, title = 'bench', priority = 'low', payload: object = { n: i }): Promise<string> => {
    const res = await fetch(`${base}/tasks/`, {
      method: 'POST',
      headers: { ...auth(token), 'Content-Type': 'application/json' },
      body: JSON.stringify({ title, payload, priority }),
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
  const taskOnce = async (token: string, title = 'bench', payload: object = { n: 1 }): Promise<number> => {
    const t = performance.now();
    await taskDone(token, await createTask(token, 1, title, 'low', payload));
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
      await finalOf(token, await uploadOnly(token, SOURCE, 'bench'));
      await taskOnce(token);
    }
    const out: Latencies = { validation: { idle: [], flood: [], ofA: 0 }, task: { idle: [], flood: [], ofA: 0 } };
    for (let i = 0; i < runs; i++) {
      await sleep(2000); // the warm pool refills
      out.validation.idle.push(await validateOnce(B));
    }
    for (let i = 0; i < runs; i++) out.task.idle.push(await taskOnce(B));

    out.validation.ofA = await underFlood(
      flood,
      async () => void (await validateOnce(A)),
      3000,
      async () => {
        for (let i = 0; i < runs; i++) out.validation.flood.push(await validateOnce(B));
      },
    );
    let t = 0;
    out.task.ofA = await underFlood(
      taskFlood,
      async () => await taskDone(A, await createTask(A, t++)),
      2000,
      async () => {
        for (let i = 0; i < runs; i++) out.task.flood.push(await taskOnce(B));
      },
    );
    if (!fair) return out;

    // Checker flood: A's alias bombs one after another at the default upload quota's pace (each one
    // different, so no verdict can be reused); B's uploads against B's idle uploads above.
    const checker: Flood = { idle: out.validation.idle, flood: [], ofA: 0 };
    checker.ofA = await underFlood(
      1,
      async () => {
        const started = performance.now();
        await verdict(A, await uploadOnly(A, `${aliasBomb()}# ${n}\n`));
        await sleep(CHECKER_FLOOD_EVERY_MS - (performance.now() - started));
      },
      3000,
      async () => {
        for (let i = 0; i < runs; i++) {
          await sleep(2000); // as when idle: the warm pool refills
          checker.flood.push(await validateOnce(B));
        }
      },
    );

    // Cross-priority flood: A keeps taskFlood `high` tasks in flight; B's `low` tasks against B's idle ones.
    const crossPriority: Flood = { idle: out.task.idle, flood: [], ofA: 0 };
    crossPriority.ofA = await underFlood(
      taskFlood,
      async () => await taskDone(A, await createTask(A, t++, 'bench', 'high')),
      2000,
      async () => {
        for (let i = 0; i < runs; i++) crossPriority.flood.push(await taskOnce(B));
      },
    );

    // Idle-thread flood: B's CPU-bound task idle, then while A runs tasks of `spinners` versions of the idle
    // spinner (one client per version, a second's pause between its tasks: the threads have the CPU to
    // themselves between calls unless the agent stops them).
    await finalOf(B, await uploadOnly(B, CPU_SOURCE, 'cpu'));
    await taskOnce(B, 'cpu', { n: CPU_N }); // its keyed container started
    const idleThread: Flood = { idle: [], flood: [], ofA: 0 };
    for (let i = 0; i < runs; i++) idleThread.idle.push(await taskOnce(B, 'cpu', { n: CPU_N }));
    const spinner = fixture('idle_spinner.py');
    for (let v = 0; v < spinners; v++) await finalOf(A, await uploadOnly(A, `${spinner}\n# version ${v}\n`, `spin_${v}`));
    let version = 0;
    idleThread.ofA = await underFlood(
      spinners,
      async () => {
        await taskDone(A, await createTask(A, 0, `spin_${version++ % spinners}`, 'low', {}));
        await sleep(1000);
      },
      3000,
      async () => {
        for (let i = 0; i < runs; i++) idleThread.flood.push(await taskOnce(B, 'cpu', { n: CPU_N }));
      },
    );
    out.hostile = { checker, idleThread, crossPriority };
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
  const options: Options = {
    flood: arg('--flood', 20),
    taskFlood: arg('--task-flood', 40),
    runs: arg('--runs', 5),
    spinners: arg('--spinners', 3),
  };
  const { flood, taskFlood, runs, spinners } = options;
  const fair = await runMode(true, options);
  const fifo = await runMode(false, options);
  const p = (v: number[], q: number) => fmt(percentile(v, q));
  const row = (b: string, a: string, mode: string, f: Flood, goal = '') => {
    const ratio = percentile(f.flood, 50) / percentile(f.idle, 50);
    return `| ${b} | ${a} | ${mode} | ${p(f.idle, 50)} | ${p(f.idle, 99)} | ${p(f.flood, 50)} | ${p(f.flood, 99)} | ${ratio.toFixed(1)}× | ${goal} | ${f.ofA} |`;
  };
  const on = 'on (TaskFlow)';
  const off = 'off (FIFO)';
  const hostile = fair.hostile!;
  const body = [
    "## Fairness: owner B's latency while owner A floods",
    '',
    `A keeps ${flood} uploads (then ${taskFlood} tasks) in flight at all times; meanwhile B makes ${runs} uploads (then ${runs} tasks) one after another.`,
    'One validation worker (concurrency 2), one task worker (2 slots); the same machine and code, the Temporal dev server with',
    "fairness on (TaskFlow's setting) and off. \"A's done meanwhile\" is how many of A's finished while B measured under the flood.",
    'Every client waits with the long poll `?wait=30&until=final`.',
    '',
    "Then, with fairness on, the hostile floods of issue 18, each against B's idle figures of the same run:",
    `the **checker flood** (A uploads a valid 2 KB file whose alias analysis used to blow up the shared checker, \`aliasBomb()\`, one after another at the default upload quota's pace of one every ${(CHECKER_FLOOD_EVERY_MS / 1000).toFixed(0)} s);`,
    `the **idle-thread flood** (A runs tasks of ${spinners} versions of \`idle_spinner.py\`, a handler whose thread spins on after it returns, each version's next task a second after its last; B's task is CPU-bound, ${CPU_N.toLocaleString('en')} iterations of Python arithmetic);`,
    `the **cross-priority flood** (A keeps ${taskFlood} \`high\` tasks in flight; B's tasks are \`low\`; A's \`high\` beyond QUOTA_HIGH_TASKS_IN_FLIGHT (${QUOTA_DEFINITIONS.highTasksInFlight.default}) are queued as \`low\`).`,
    `With ${runs} runs each, p99 is the slowest run. The machine was shared with other work (a CI run among it) during this run, so single figures are noisy: read the ratios.`,
    '',
    "| B's | A's flood | fairness | idle p50 ms | idle p99 ms | under flood p50 ms | under flood p99 ms | ratio (p50) | goal | A's done meanwhile |",
    '|---|---|---|---|---|---|---|---|---|---|',
    row('upload → VALIDATED', `${flood} uploads in flight`, on, fair.validation),
    row('upload → VALIDATED', `${flood} uploads in flight`, off, fifo.validation),
    row('task create → COMPLETED', `${taskFlood} tasks in flight`, on, fair.task),
    row('task create → COMPLETED', `${taskFlood} tasks in flight`, off, fifo.task),
    row('upload → VALIDATED', 'checker flood', on, hostile.checker, '≤ 1.5×'),
    row('CPU-bound task create → COMPLETED', 'idle-thread flood', on, hostile.idleThread, '≤ 1.2×'),
    row(
      '`low` task create → COMPLETED',
      `cross-priority flood (${taskFlood} \`high\` in flight)`,
      on,
      hostile.crossPriority,
      'a small multiple',
    ),
  ].join('\n');
  process.stdout.write(body + '\n');
  if (process.argv.includes('--no-write')) return;
  writeSection(
    'fairness',
    `bash scripts/bench.sh fairness --flood ${flood} --task-flood ${taskFlood} --runs ${runs} --spinners ${spinners}`,
    body,
  );
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
