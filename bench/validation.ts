/**
 * Upload → VALIDATED for a small good file, as a client sees it over HTTP (multipart upload, then the
 * long poll `?wait=&until=final`; also following each change, `until=change`), with the API and the validation worker in one
 * process as app/main.ts runs them (eager workflow start, warm run containers, a long-lived checker
 * container); and validations per minute sustained by several clients at once. Real Temporal dev server
 * (TaskFlow's settings), runsc. The engine floor is measured in the same run (bench/floor.ts).
 * Run: bash scripts/bench.sh validation [--runs N] [--clients N] [--seconds N] [--floor-runs N] [--cold]
 */
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@temporalio/client';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createApp } from '../src/api/app';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { openStorage } from '../src/storage';
import { tasksNotEnabled } from '../src/tasks/task-service';
import { ValidationService } from '../src/validation/service';
import { WorkflowStarter } from '../src/workflow-starter';
import { bundleValidationWorkflows, createValidationWorker } from '../app/validation-worker';
import { createSandbox } from '../sandbox';
import type { ValidationStatus } from '../domain/validation';
import type { WaitUntil } from '../domain/wait';
import { startTemporal, type StartedTemporal } from '../test/helpers/temporal';
import { floorRows, measureDefaultFloor, measureFloor, ratio } from './floor';
import { fmt, percentile, quiet, writeSection, benchEnv } from './report';
import { startCpuCount, stepRows, validationSteps, type Steps } from './where-time-goes';

const SOURCE = 'async def handler(payload):\n    return {"n": payload.get("n", 0) + 1}\n';
const TOKEN = 'bench-token-0123456789abcdef';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

interface ModeResult {
  mode: string;
  latencies: number[];
  /** The same, following each status change (`until=change`, as the CLI shows progress). */
  changeLatencies: number[];
  checkMs: number[];
  runMs: number[];
  perMinute: number;
  steps: Steps[];
  /** CPU ms per validation in the sustained phase, by who spent it. */
  cpuPerValidation: [string, number][];
}

async function runMode(
  temporal: StartedTemporal,
  bundle: WorkflowBundleWithSourceMap,
  warm: boolean,
  o: { runs: number; clients: number; seconds: number },
): Promise<ModeResult> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-bench-'));
  const config = loadConfig({
    ...benchEnv(),
    DATA_DIR: root,
    TASKS_DIR: path.join(root, 'tasks'),
    TEMPORAL_ADDRESS: temporal.address,
    TASK_VALIDATION_QUEUE_NAME: `bench-${path.basename(root)}`,
    TASKFLOW_API_KEYS: `bench:${TOKEN}`,
    SANDBOX_POOL_SIZE: warm ? '2' : '0',
    SANDBOX_CHECKER_CONTAINERS: warm ? '1' : '0',
    LOG_LEVEL: 'warn',
  });
  const log = createLogger('warn');
  const storage = await openStorage(config, log);
  const sandbox = await createSandbox(config.sandbox, log, { validationPool: true });
  const worker = await createValidationWorker({
    config,
    sandbox,
    storage,
    connection: temporal.env.nativeConnection,
    log,
    workflowBundle: bundle,
  });
  const running = worker.run();
  // As app/main.ts: the API shares the process with the worker, so validations start eagerly.
  const starter = new WorkflowStarter(temporal.env.client);
  starter.enableEager(new Client({ connection: temporal.env.nativeConnection, namespace: temporal.namespace }), [config.validationQueue]);
  const validations = new ValidationService({ config, storage, client: temporal.env.client, log, starter });
  const app = createApp({ config, keys: config.apiKeys, validations, tasks: tasksNotEnabled, log, temporalHealthy: async () => true });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const auth = { Authorization: `Bearer ${TOKEN}` };

  let n = 0;
  const validateOnce = async (until: WaitUntil = 'final'): Promise<{ ms: number; final: ValidationStatus; startedAt: number }> => {
    const started = performance.now();
    const startedAt = Date.now();
    const form = new FormData();
    form.append('file', new Blob([SOURCE], { type: 'text/x-python' }), 'bench.py');
    const res = await fetch(`${base}/tasks/upload_file?file_name=bench_${n++}`, { method: 'POST', body: form, headers: auth });
    if (res.status !== 202) throw new Error(`upload: HTTP ${res.status} ${await res.text()}`);
    const { status_url } = (await res.json()) as { status_url: string };
    let known = 'PENDING';
    for (;;) {
      const url = `${base}${status_url}?wait=30&known_status=${known}&until=${until}`;
      const s = (await (await fetch(url, { headers: auth })).json()) as ValidationStatus;
      if (s.status === 'VALIDATED') return { ms: performance.now() - started, final: s, startedAt };
      if (s.status === 'REJECTED') throw new Error(`rejected: ${JSON.stringify(s.findings)}`);
      known = s.status;
    }
  };
  // Steady state between latency runs: the run-container pool has refilled (a start takes ~0.5-1 s of a core).
  const settle = () => new Promise((r) => setTimeout(r, warm ? 2500 : 300));

  try {
    await validateOnce(); // warm-up: workflow code cached, containers started
    const latencies: number[] = [];
    const changeLatencies: number[] = [];
    const checkMs: number[] = [];
    const runMs: number[] = [];
    const steps: Steps[] = [];
    for (let i = 0; i < o.runs; i++) {
      await settle();
      const { ms, final, startedAt } = await validateOnce('final');
      steps.push(await validationSteps(temporal.env.client, final, startedAt, startedAt + ms));
      latencies.push(ms);
      checkMs.push(final.metrics.static_check_ms ?? NaN);
      runMs.push(final.metrics.sandbox_wall_ms ?? NaN);
      await settle();
      changeLatencies.push((await validateOnce('change')).ms);
    }
    await settle();
    // Sustained: `clients` clients each validating one file after another for `seconds`.
    let done = 0;
    const cpu = startCpuCount();
    const until = performance.now() + o.seconds * 1000;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: o.clients }, async () => {
        while (performance.now() < until) {
          await validateOnce();
          done++;
        }
      }),
    );
    const perMinute = (done / (performance.now() - t0)) * 60000;
    const cpuPerValidation = cpu(done);
    const mode = warm ? 'warm: 2 run containers ready, 1 long-lived checker container' : 'cold: a container started per check and per run';
    return { mode, latencies, changeLatencies, checkMs, runMs, perMinute, steps, cpuPerValidation };
  } finally {
    server.close();
    starter.disableEager();
    worker.shutdown();
    await running;
    await sandbox.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const runs = arg('--runs', 20);
  const clients = arg('--clients', 4);
  const seconds = arg('--seconds', 60);
  const floorRuns = arg('--floor-runs', 30);
  const cold = process.argv.includes('--cold');
  const [temporal, bundle] = await Promise.all([startTemporal(), bundleValidationWorkflows()]);
  let results: ModeResult[];
  let tuned;
  try {
    // The floor first, on a quiet machine, as the latency runs find it (afterwards the machine is still
    // busy removing the sustained phase's containers).
    tuned = await measureFloor(temporal, floorRuns);
    results = [await runMode(temporal, bundle, true, { runs, clients, seconds })];
    if (cold) results.push(await runMode(temporal, bundle, false, { runs: Math.min(runs, 5), clients, seconds: Math.min(seconds, 20) }));
  } finally {
    await temporal.stop();
  }
  await quiet();
  const untuned = await measureDefaultFloor(floorRuns);

  const warm = results[0];
  const p50 = percentile(warm.latencies, 50);
  const rows = results.map(
    (r) =>
      `| ${r.mode} | ${r.latencies.length} | ${fmt(percentile(r.latencies, 50))} | ${fmt(percentile(r.latencies, 99))} | ${fmt(percentile(r.changeLatencies, 50))} | ${fmt(percentile(r.checkMs, 50))} | ${fmt(percentile(r.runMs, 50))} | ${r.perMinute.toFixed(0)} |`,
  );
  // Other work on a shared machine is not the validations' cost (it is shown, apart).
  const cpuTotal = warm.cpuPerValidation.filter(([who]) => !who.startsWith('everything else')).reduce((a, [, ms]) => a + ms, 0);
  const body = [
    '## Validation: upload → VALIDATED (small good file; API and validation worker in one process)',
    '',
    '| sandbox containers | runs | p50 ms | p99 ms | p50 ms following each change | static check p50 ms | sandbox run p50 ms | validations / minute |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    ...floorRows(tuned, untuned),
    '',
    `Goals: p50 ≤ 150 ms — measured ${fmt(p50)} ms; ≤ 0.6 × a four-activity workflow on a default dev server — measured ${ratio(p50, untuned.fourActivities)} ` +
      `(${ratio(p50, tuned.fourActivities)} of the same floor on the tuned server); ≥ 150 validations/minute sustained — measured ${warm.perMinute.toFixed(0)} ` +
      `(${clients} clients for ${seconds} s).`,
    '',
    'Latency is what the client sees: multipart upload, eager workflow start, stage (local activity), static check (checker',
    'container, one fresh checker process), sandbox run (a warm single-use container: load and call), promotion (local',
    "activity), and the long poll `?wait=30&until=final` answering with the final status (the workflow's result). The",
    '"following each change" column is the same with `until=change` (answered at each status change, as the CLI',
    "follows progress), measured alternately with it. The static check and sandbox run columns are the activities' own",
    "wall times (from the final status's metrics); the rest is the engine, the API and storage. Throughput uses `until=final`.",
    '',
    'Where the time goes: the steps of each latency run, from its workflow history (warm mode).',
    '',
    ...stepRows(warm.steps),
    '',
    `Where the CPU goes: CPU ms per validation in the sustained phase (${cpuTotal.toFixed(0)} ms in all but "everything else", on ${os.cpus().length} cores), ` +
      `from /proc${process.env.BENCH_ENGINE_CGROUP ? ` and the engine's cpuacct cgroup (${process.env.BENCH_ENGINE_CGROUP})` : ''}.`,
    '',
    '| who | CPU ms per validation |',
    '|---|---|',
    ...warm.cpuPerValidation.map(([who, ms]) => `| ${who} | ${ms.toFixed(0)} |`),
    '',
    `At that CPU cost the ${os.cpus().length} cores allow at most ${((60000 * os.cpus().length) / cpuTotal).toFixed(0)} validations/minute, ` +
      'whatever the engine does: the single-use run container (create, boot, remove under runsc) is most of it.',
  ].join('\n');
  process.stdout.write(body + '\n');
  if (!process.argv.includes('--no-write')) {
    writeSection(
      'validation',
      `bash scripts/bench.sh validation --runs ${runs} --clients ${clients} --seconds ${seconds} --floor-runs ${floorRuns}${cold ? ' --cold' : ''}`,
      body,
    );
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
