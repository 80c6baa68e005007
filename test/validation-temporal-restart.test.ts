/**
 * The Temporal dev server crashes (SIGKILL) in the middle of a validation and comes back on its
 * SQLite file: the validation finishes; an upload made while it was down answers 503, is kept, and
 * is validated once the API's recovery pass runs. Tasks, scheduled or queued, survive it too.
 */
import path from 'node:path';
import request from 'supertest';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import type { Config } from '../src/config';
import { silentLogger } from '../src/logger';
import { startTaskWorkers, type RunningTaskWorkers } from '../app/task-worker';
import { TemporalTaskService } from '../src/tasks/temporal-task-service';
import { bundleValidationWorkflows, createValidationWorker } from '../app/validation-worker';
import type { Sandbox } from '../sandbox';
import { startSandbox } from './helpers/sandbox';
import { freePort, startDevServer, type Child } from './helpers/processes';
import { quietRuntime } from './helpers/temporal';
import { ALICE, buildApi, promotedSource, suiteConfig, upload, waitForStatus, type TestApi } from './helpers/validation';

let port: number;
let dbFile: string;
let server: Child | undefined;
let config: Config;
let sandbox: Sandbox;
let connection: Connection;
let nativeConnection: NativeConnection;
let worker: Worker;
let running: Promise<void>;
let api: TestApi;
let taskWorkers: RunningTaskWorkers;

// TaskFlow's settings for a file DB (WAL, synchronous=NORMAL): this test is what shows they survive a SIGKILL.
async function startServer(): Promise<void> {
  server = await startDevServer(port, dbFile);
}

async function killServer(): Promise<void> {
  await server!.kill();
  server = undefined;
}

beforeAll(async () => {
  quietRuntime();
  port = await freePort();
  const bundle = bundleValidationWorkflows();
  config = suiteConfig(`127.0.0.1:${port}`);
  dbFile = path.join(config.dataDir, '..', 'temporal.db');
  await startServer();
  sandbox = await startSandbox(config, { validationPool: true, keyedLimits: config.taskLimits });
  connection = Connection.lazy({ address: config.temporal.address });
  const client = new Client({ connection, namespace: 'default' });
  api = await buildApi(config, client, (storage) => new TemporalTaskService({ client, config, log: silentLogger, records: storage.tasks }));
  nativeConnection = await NativeConnection.connect({ address: config.temporal.address });
  worker = await createValidationWorker({
    config,
    sandbox,
    storage: api.storage,
    connection: nativeConnection,
    log: silentLogger,
    workflowBundle: await bundle,
  });
  running = worker.run();
  taskWorkers = await startTaskWorkers({
    config,
    sandbox,
    connection: nativeConnection,
    client,
    log: silentLogger,
    loadVersion: (owner, title, sha) => api.storage.files.loadVersion(owner, title, sha),
    taskFinished: (taskId, status, bytes) => api.storage.tasks.finished(taskId, status, bytes),
  });
}, 120000);

afterAll(async () => {
  if (!server) await startServer().catch(() => undefined); // the worker drains against a live server
  worker?.shutdown();
  await running?.catch(() => undefined);
  await taskWorkers?.shutdown().catch(() => undefined);
  await nativeConnection?.close();
  await connection?.close();
  await sandbox?.close();
  if (server) await killServer();
});

test('the dev server is killed mid validation and restarted: nothing is lost', async () => {
  const slow = 'import asyncio\n\nasync def handler(payload):\n    await asyncio.sleep(2)\n    return {"ok": True}\n';
  const id = (await upload(api.app, ALICE, 'survivor', slow).expect(202)).body.validation_id as string;
  await waitForStatus(api.app, ALICE, id, (s) => s.status === 'SANDBOX_RUN', 30000);

  await killServer();
  // Down: an upload answers 503 but is kept.
  const during = await upload(api.app, ALICE, 'during_outage', 'def handler(payload):\n    return 1\n');
  expect(during.status).toBe(503);
  const keptId = during.body.error.validation_id as string;
  expect(await api.storage.records.get(keptId)).toMatchObject({ workflow_started: false, file_name: 'during_outage' });

  await startServer();
  const s = await waitForStatus(api.app, ALICE, id, undefined, 60000);
  expect(s).toMatchObject({ status: 'VALIDATED', promoted: true });
  expect(await promotedSource(api.storage, 'alice', 'survivor')).toBe(slow);

  expect(await api.validations.recoverPendingStarts()).toBe(1);
  expect(await waitForStatus(api.app, ALICE, keptId, undefined, 60000)).toMatchObject({ status: 'VALIDATED', file_name: 'during_outage' });
});

test('tasks created before a dev server crash still run after it comes back', async () => {
  const source = 'def handler(payload):\n    return {"twice": payload.get("n", 0) * 2}\n';
  const id = (await upload(api.app, ALICE, 'doubler', source).expect(202)).body.validation_id as string;
  expect(await waitForStatus(api.app, ALICE, id, undefined, 60000)).toMatchObject({ status: 'VALIDATED' });
  const create = (body: Record<string, unknown>) =>
    request(api.app)
      .post('/tasks/')
      .set('Authorization', `Bearer ${ALICE}`)
      .send({ title: 'doubler', ...body })
      .expect(201);
  const scheduled = (await create({ payload: { n: 2 }, scheduled_at: new Date(Date.now() + 4000).toISOString() })).body.task_id;

  await killServer();
  // Down: creating a task is refused clearly, nothing half-made.
  expect(
    (
      await request(api.app)
        .post('/tasks/')
        .set('Authorization', `Bearer ${ALICE}`)
        .send({ title: 'doubler', payload: { n: 1 } })
    ).status,
  ).toBe(503);
  await startServer();

  const queued = (await create({ payload: { n: 3 } })).body.task_id;
  for (const [taskId, twice] of [
    [scheduled, 4],
    [queued, 6],
  ] as const) {
    const deadline = Date.now() + 60000;
    for (;;) {
      const res = await request(api.app).get(`/tasks/${taskId}`).set('Authorization', `Bearer ${ALICE}`);
      if (res.status === 200 && res.body.status === 'COMPLETED') {
        expect(res.body.result).toEqual({ twice });
        break;
      }
      if (Date.now() > deadline) throw new Error(`task ${taskId} did not complete: ${JSON.stringify(res.body)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}, 120000);
