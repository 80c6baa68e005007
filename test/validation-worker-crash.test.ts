/**
 * Crash safety of the validation worker: a real worker process (app/main.ts, role
 * validation-worker) is SIGKILLed in the middle of sandbox runs; once another worker process is
 * up, the validations finish with the right answers (the sandbox run is retried, not lost).
 * The same for a worker killed inside `promote`, a local activity: it runs again on the next worker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import type { Config } from '../src/config';
import { LABEL, LABEL_INSTANCE } from '../sandbox/spec';
import { validationWorkflowId } from '../domain/validation';
import { testConfig } from './helpers/sandbox';
import { startTemporal, type StartedTemporal } from './helpers/temporal';
import {
  ALICE,
  buildApi,
  promotedSource,
  quarantined,
  statusOf,
  suiteEnv,
  upload,
  waitForStatus,
  type TestApi,
} from './helpers/validation';

const ROOT = path.resolve(__dirname, '..');
let temporal: StartedTemporal;
let env: Record<string, string>;
let config: Config;
let api: TestApi;
const children = new Set<ChildProcess>();

interface WorkerProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  log: () => string;
}

/** Starts `app/main.ts` (or `script`) as a validation worker and resolves once it polls its task queue. */
async function startWorkerProcess(
  script = 'app/main.ts',
  extraEnv: Record<string, string> = {},
  ready = '"msg":"validation worker polling"',
): Promise<WorkerProcess> {
  const child = spawn(path.join(ROOT, 'node_modules/.bin/ts-node'), ['--transpile-only', script], {
    cwd: ROOT,
    env: { ...process.env, ...env, TASKFLOW_ROLES: 'validation-worker', LOG_LEVEL: 'info', ...extraEnv },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start in 60 s:\n${stderr.slice(-3000)}`)), 60000);
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
      if (stderr.includes(ready)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited (${code}) during start-up:\n${stderr.slice(-3000)}`));
    });
  });
  return { child, exited, log: () => stderr };
}

beforeAll(async () => {
  temporal = await startTemporal();
  // Payloads that take 4 s, well inside the payload timeout; a dead worker noticed within 2 s.
  env = suiteEnv(temporal.address, { SANDBOX_POOL_SIZE: '2', SANDBOX_PAYLOAD_TIMEOUT_MS: '15000', SANDBOX_TOTAL_TIMEOUT_MS: '30000' });
  config = testConfig(env);
  api = await buildApi(config, temporal.env.client);
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await temporal?.stop();
});

test('a worker killed mid sandbox run: the validations finish correctly once another worker runs', async () => {
  const first = await startWorkerProcess();
  const good = 'import asyncio\n\nasync def handler(payload):\n    await asyncio.sleep(4)\n    return {"ok": True}\n';
  const bad = 'import asyncio\n\nasync def handler(payload):\n    await asyncio.sleep(4)\n    raise RuntimeError("late failure")\n';
  const goodId = (await upload(api.app, ALICE, 'slow_good', good).expect(202)).body.validation_id as string;
  const badId = (await upload(api.app, ALICE, 'slow_bad', bad).expect(202)).body.validation_id as string;

  // Both are inside their sandbox runs on the first worker...
  await waitForStatus(api.app, ALICE, goodId, (s) => s.status === 'SANDBOX_RUN', 30000);
  await waitForStatus(api.app, ALICE, badId, (s) => s.status === 'SANDBOX_RUN', 30000);
  await new Promise((r) => setTimeout(r, 1000));
  const firstPid = first.child.pid!;
  // ...when it dies without any chance to clean up.
  process.kill(firstPid, 'SIGKILL');
  expect(await first.exited).toBeNull();

  // With no worker at all, status still answers (from the search attribute) and nothing is promoted.
  expect((await statusOf(api.app, ALICE, goodId)).status).toBe('SANDBOX_RUN');
  expect(await promotedSource(api.storage, 'alice', 'slow_good')).toBeUndefined();

  const second = await startWorkerProcess();
  try {
    const [g, b] = await Promise.all([
      waitForStatus(api.app, ALICE, goodId, undefined, 60000),
      waitForStatus(api.app, ALICE, badId, undefined, 60000),
    ]);
    expect(g).toMatchObject({ status: 'VALIDATED', promoted: true, metrics: { payloads_ok: 1 } });
    expect(await promotedSource(api.storage, 'alice', 'slow_good')).toBe(good);
    expect(b.status).toBe('REJECTED');
    expect(b.findings).toContainEqual(
      expect.objectContaining({ code: 'handler_raised', message: expect.stringContaining('late failure') }),
    );
    expect((await quarantined(api.storage, badId)).source).toBe(bad);
    expect(await promotedSource(api.storage, 'alice', 'slow_bad')).toBeUndefined();

    // The sandbox run really was retried: its second attempt ran on the new worker.
    for (const id of [goodId, badId]) {
      const history = await temporal.env.client.workflow.getHandle(validationWorkflowId(id)).fetchHistory();
      const attempts = (history.events ?? []).flatMap((e) =>
        e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 1] : [],
      );
      expect(Math.max(...attempts)).toBeGreaterThanOrEqual(2);
    }

    // The dead worker's containers were removed by the new one; nothing of them is left.
    const docker = new Docker({ socketPath: config.sandbox.dockerSocket });
    const left = await docker.listContainers({ all: true, filters: { label: [LABEL] } });
    expect(left.filter((c) => (c.Labels[LABEL_INSTANCE] ?? '').split('/')[1] === String(firstPid))).toEqual([]);
  } finally {
    // A graceful stop: SIGTERM, the worker drains and removes its containers.
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }
});

test('a worker killed inside promote (a local activity): the next worker runs it again and the file is promoted', async () => {
  const marker = path.join(path.dirname(config.dataDir), 'stall-marker'); // the suite's temp root (DATA_DIR itself may not exist)
  const stalling = await startWorkerProcess('test/helpers/stalling-promote-worker.ts', { STALL_MARKER: marker }, 'stalling worker polling');
  const good = 'def handler(payload):\n    return {"ok": True}\n';
  const id = (await upload(api.app, ALICE, 'promoted_late', good).expect(202)).body.validation_id as string;
  for (let i = 0; !fs.existsSync(marker); i++) {
    if (i > 600) throw new Error(`the stalling worker never reached promote:\n${stalling.log().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  process.kill(stalling.child.pid!, 'SIGKILL');
  expect(await stalling.exited).toBeNull();
  expect(await promotedSource(api.storage, 'alice', 'promoted_late')).toBeUndefined();

  const next = await startWorkerProcess();
  try {
    // The workflow task the dead worker held times out (10 s); the next worker replays it and promotes.
    const s = await waitForStatus(api.app, ALICE, id, undefined, 90000);
    expect(s).toMatchObject({ status: 'VALIDATED', promoted: true });
    expect(await promotedSource(api.storage, 'alice', 'promoted_late')).toBe(good);
    const history = await temporal.env.client.workflow.getHandle(validationWorkflowId(id)).fetchHistory();
    const events = history.events ?? [];
    // Local activities leave markers (stage, promote), not activity task events; the dead worker's workflow task timed out.
    expect(events.filter((e) => e.markerRecordedEventAttributes).length).toBeGreaterThanOrEqual(2);
    expect(events.some((e) => e.workflowTaskTimedOutEventAttributes)).toBe(true);
  } finally {
    next.child.kill('SIGTERM');
    expect(await next.exited).toBe(0);
  }
});
