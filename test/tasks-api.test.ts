/**
 * Task execution end to end over HTTP: upload → validated → POST /tasks/ → a runTask workflow →
 * a sandboxed run on a task worker. Real Temporal dev server, real Docker + runsc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import type { Worker, WorkflowBundleWithSourceMap } from '@temporalio/worker';
import request from 'supertest';
import type { Config } from '../src/config';
import { silentLogger } from '../src/logger';
import { bundleTaskWorkflows, startTaskWorkers, type RunningTaskWorkers } from '../app/task-worker';
import { TemporalTaskService } from '../src/tasks/temporal-task-service';
import { createValidationWorker } from '../app/validation-worker';
import type { Sandbox } from '../sandbox';
import type { TaskState } from '../domain/task';
import { startSandbox } from './helpers/sandbox';
import { startTemporal, type StartedTemporal } from './helpers/temporal';
import { ALICE, BOB, buildApi, suiteEnv, upload, waitForStatus, type TestApi } from './helpers/validation';
import { testConfig } from './helpers/sandbox';

const ROOT = path.join(__dirname, '..');
let temporal: StartedTemporal;
let env: Record<string, string>;
let config: Config;
let sandbox: Sandbox;
let api: TestApi;
let validationWorker: Worker;
let validationRun: Promise<void>;
let bundle: WorkflowBundleWithSourceMap;
let taskWorkers: RunningTaskWorkers | undefined;

const FLEXIBLE = `import os
import time


def handler(payload):
    if payload.get("exit"):
        os._exit(3)
    if payload.get("boom"):
        raise ValueError("boom on request")
    if payload.get("sleep"):
        time.sleep(payload["sleep"])
    if payload.get("alloc_mb"):
        hog = bytearray(payload["alloc_mb"] * 1024 * 1024)
        return {"allocated": len(hog)}
    return {"ok": True, "echo": payload}
`;

// Behaves during validation ({} payloads); reaches for secrets and the network when asked to.
const SLEEPER_CELL = `import os
import urllib.request


def handler(payload):
    if not payload.get("attack"):
        return {"fine": True}
    loot = {"env": dict(os.environ)}
    try:
        with open("/etc/hostname") as f:
            loot["hostname"] = f.read()
    except OSError as exc:
        loot["hostname"] = str(exc)
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/" % payload["port"], timeout=2).read()
        loot["network"] = "reached"
    except Exception as exc:
        loot["network"] = repr(exc)
    return loot
`;

// Behaves during validation; on request, opens a network socket past the static check and the
// audit hook (as test/fixtures/tasks/evade_socket.py): only the syscall layer sees it.
const SYSCALL_CELL = `import os


def handler(payload):
    if payload.get("attack"):
        modules = getattr(os, "sy" + "s").modules
        getattr(modules["_soc" + "ket"], "soc" + "ket")()
    return {"fine": True}
`;

const versioned = (v: number) => `def handler(payload):\n    return {"version": ${v}}\n`;

async function startTaskWorkersInProcess(): Promise<void> {
  taskWorkers = await startTaskWorkers({
    config,
    sandbox,
    connection: temporal.env.nativeConnection,
    client: temporal.env.client,
    log: silentLogger,
    loadVersion: (owner, title, sha) => api.storage.files.loadVersion(owner, title, sha),
    taskFinished: (taskId, status, bytes) => api.storage.tasks.finished(taskId, status, bytes),
    workflowBundle: bundle,
  });
}

beforeAll(async () => {
  temporal = await startTemporal();
  env = suiteEnv(temporal.address, { TASK_WORKER_SLOTS: '1', TASK_PAYLOAD_TIMEOUT_MS: '4000' });
  config = testConfig(env);
  [sandbox, bundle] = await Promise.all([
    startSandbox(config, { validationPool: true, keyedLimits: config.taskLimits }),
    bundleTaskWorkflows(),
  ]);
  api = await buildApi(
    config,
    temporal.env.client,
    (storage) => new TemporalTaskService({ client: temporal.env.client, config, log: silentLogger, records: storage.tasks }),
  );
  validationWorker = await createValidationWorker({
    config,
    sandbox,
    storage: api.storage,
    connection: temporal.env.nativeConnection,
    log: silentLogger,
  });
  validationRun = validationWorker.run();
  await startTaskWorkersInProcess();
}, 240000);

afterAll(async () => {
  await taskWorkers?.shutdown();
  validationWorker?.shutdown();
  await validationRun;
  await sandbox?.close();
  await temporal?.stop();
});

async function validated(token: string, name: string, source: string): Promise<void> {
  const res = await upload(api.app, token, name, source);
  expect(res.status).toBe(202);
  const s = await waitForStatus(api.app, token, res.body.validation_id);
  expect(s.status).toBe('VALIDATED');
}

async function createTask(token: string, body: Record<string, unknown>) {
  return request(api.app).post('/tasks/').set('Authorization', `Bearer ${token}`).send(body);
}

async function getTask(token: string, id: string) {
  return request(api.app).get(`/tasks/${id}`).set('Authorization', `Bearer ${token}`);
}

async function waitForTask(
  token: string,
  id: string,
  done = (t: TaskState) => ['COMPLETED', 'FAILED', 'CANCELLED'].includes(t.status),
  timeoutMs = 60000,
): Promise<TaskState> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const res = await getTask(token, id);
    expect(res.status).toBe(200);
    if (done(res.body)) return res.body;
    if (Date.now() > until) throw new Error(`task ${id} still ${res.body.status}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

async function run(token: string, body: Record<string, unknown>): Promise<TaskState> {
  const res = await createTask(token, body);
  expect(res.status).toBe(201);
  return waitForTask(token, res.body.task_id);
}

beforeAll(async () => {
  await validated(ALICE, 'flexible', FLEXIBLE);
  await validated(ALICE, 'sleeper_cell', SLEEPER_CELL);
}, 120000);

test('a task runs its handler in a sandbox and reports the result', async () => {
  const res = await createTask(ALICE, { title: 'flexible', payload: { n: 1 }, priority: 'high' });
  expect(res.status).toBe(201);
  expect(res.body).toMatchObject({ task_id: expect.any(String), status: 'QUEUED', title: 'flexible', priority: 'high' });
  const t = await waitForTask(ALICE, res.body.task_id);
  expect(t).toMatchObject({ status: 'COMPLETED', result: { ok: true, echo: { n: 1 } }, attempts: 1 });
  expect(t.started_at && t.finished_at && t.created_at).toBeTruthy();
  expect(t.metrics).toMatchObject({ runtime: 'runsc' });
});

test('async handlers too, and priority defaults to low', async () => {
  await validated(ALICE, 'good_async', 'async def handler(payload):\n    return {"sum": sum(payload.get("numbers", []))}\n');
  const res = await createTask(ALICE, { title: 'good_async', payload: { numbers: [1, 2, 3] } });
  expect(res.body.priority).toBe('low');
  expect(await waitForTask(ALICE, res.body.task_id)).toMatchObject({ status: 'COMPLETED', result: { sum: 6 } });
});

test('a raising handler fails the task at once with its error', async () => {
  const t = await run(ALICE, { title: 'flexible', payload: { boom: true } });
  expect(t).toMatchObject({
    status: 'FAILED',
    attempts: 1,
    error: { type: 'HandlerFailed', message: expect.stringContaining('boom on request') },
  });
});

test('the timeout and the memory limit fail the task naming the cause', async () => {
  expect(await run(ALICE, { title: 'flexible', payload: { sleep: 60 } })).toMatchObject({
    status: 'FAILED',
    error: { type: 'HandlerTimeout' },
  });
  expect(await run(ALICE, { title: 'flexible', payload: { alloc_mb: 1024 } })).toMatchObject({
    status: 'FAILED',
    error: { type: 'LimitExceeded' },
  });
});

test('a file that behaved during validation is contained when it attacks in production', async () => {
  process.env.TASKFLOW_SECRET_FOR_TEST = 'prod-secret-4471';
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const t = await run(ALICE, { title: 'sleeper_cell', payload: { attack: true, port: (server.address() as net.AddressInfo).port } });
    expect(JSON.stringify(t)).not.toContain('prod-secret-4471');
    expect(connections).toBe(0);
    expect(t.status).toBe('FAILED');
    expect(t.error?.type).toBe('ForbiddenBehaviour');
  } finally {
    server.close();
  }
});

test('a forbidden system call the audit hook never saw fails the task at once, naming the call', async () => {
  await validated(ALICE, 'syscall_cell', SYSCALL_CELL);
  const t = await run(ALICE, { title: 'syscall_cell', payload: { attack: true } });
  expect(t).toMatchObject({
    status: 'FAILED',
    attempts: 1,
    error: { type: 'ForbiddenBehaviour', message: expect.stringMatching(/forbidden system call: socket \(opens a network socket\)/) },
  });
  expect(t.metrics).toMatchObject({ runStatus: 'forbidden', refusedSyscalls: ['socket'] });
  // Its container is gone; the next task of the same file gets a fresh one and succeeds.
  expect(await run(ALICE, { title: 'syscall_cell', payload: {} })).toMatchObject({ status: 'COMPLETED', result: { fine: true } });
});

test('a handler that crashes its process fails the task once, not retried as infrastructure', async () => {
  const t = await run(ALICE, { title: 'flexible', payload: { exit: true } });
  expect(t).toMatchObject({
    status: 'FAILED',
    attempts: 1,
    error: { type: 'HandlerCrashed', message: expect.stringContaining('status 3') },
  });
});

test('a task runs the version validated when it was created, even after the file is replaced', async () => {
  await validated(ALICE, 'versioned', versioned(1));
  const res = await createTask(ALICE, { title: 'versioned', payload: {}, scheduled_at: Math.floor(Date.now() / 1000) + 4 });
  expect(res.body.status).toBe('SCHEDULED');
  await validated(ALICE, 'versioned', versioned(2));
  expect(await waitForTask(ALICE, res.body.task_id)).toMatchObject({ status: 'COMPLETED', result: { version: 1 } });
  expect(await run(ALICE, { title: 'versioned', payload: {} })).toMatchObject({ result: { version: 2 } });
});

test('a scheduled task waits and then runs; it can be cancelled before', async () => {
  const at = new Date(Date.now() + 3000).toISOString();
  const res = await createTask(ALICE, { title: 'flexible', payload: {}, scheduled_at: at });
  expect(res.status).toBe(201);
  expect(res.body.status).toBe('SCHEDULED');
  const t = await waitForTask(ALICE, res.body.task_id);
  expect(t.status).toBe('COMPLETED');
  expect(Date.parse(t.started_at!)).toBeGreaterThanOrEqual(Date.parse(at));

  const later = await createTask(ALICE, { title: 'flexible', payload: {}, scheduled_at: new Date(Date.now() + 600000).toISOString() });
  const del = await request(api.app).delete(`/tasks/${later.body.task_id}`).set('Authorization', `Bearer ${ALICE}`);
  expect(del.status).toBe(202);
  expect(await waitForTask(ALICE, later.body.task_id)).toMatchObject({ status: 'CANCELLED' });
  const again = await request(api.app).delete(`/tasks/${later.body.task_id}`).set('Authorization', `Bearer ${ALICE}`);
  expect(again.status).toBe(409);
});

test('cancelling a running task stops its sandbox', async () => {
  const res = await createTask(ALICE, { title: 'flexible', payload: { sleep: 30 } });
  await waitForTask(ALICE, res.body.task_id, (t) => t.status === 'RUNNING');
  const del = await request(api.app).delete(`/tasks/${res.body.task_id}`).set('Authorization', `Bearer ${ALICE}`);
  expect(del.status).toBe(202);
  expect(await waitForTask(ALICE, res.body.task_id)).toMatchObject({ status: 'CANCELLED' });
});

test('other owners cannot see, list or cancel a task', async () => {
  const res = await createTask(ALICE, { title: 'flexible', payload: {} });
  expect((await getTask(BOB, res.body.task_id)).status).toBe(404);
  expect((await request(api.app).delete(`/tasks/${res.body.task_id}`).set('Authorization', `Bearer ${BOB}`)).status).toBe(404);
  expect((await createTask(BOB, { title: 'flexible', payload: {} })).status).toBe(404); // bob never uploaded it
  const list = await request(api.app).get('/tasks/').set('Authorization', `Bearer ${BOB}`);
  expect(list.status).toBe(200);
  expect(list.body.tasks).toEqual([]);
  expect((await getTask(ALICE, 'not-a-task-id')).status).toBe(404);
});

test('an owner lists their tasks, filtered by status and title, paged', async () => {
  await validated(ALICE, 'listed', versioned(7));
  for (let i = 0; i < 3; i++) await run(ALICE, { title: 'listed', payload: { i } });
  const until = Date.now() + 20000;
  let body: { tasks: TaskState[]; next_offset?: number } = { tasks: [] };
  while (Date.now() < until) {
    const res = await request(api.app)
      .get('/tasks/')
      .query({ status: 'COMPLETED', title: 'listed', limit: 2 })
      .set('Authorization', `Bearer ${ALICE}`);
    expect(res.body).toMatchObject({ tasks: expect.any(Array) });
    body = res.body;
    if (body.tasks.length === 2) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  expect(body.tasks).toHaveLength(2);
  expect(body.tasks.every((t) => t.status === 'COMPLETED' && t.title === 'listed' && t.owner === 'alice')).toBe(true);
  expect(body.next_offset).toBe(2);
  const bad = await request(api.app).get('/tasks/').query({ status: 'WHATEVER' }).set('Authorization', `Bearer ${ALICE}`);
  expect(bad.status).toBe(400);
});

test('bad task requests get clear 4xx answers', async () => {
  expect((await createTask(ALICE, { title: 'flexible', payload: {}, priority: 'urgent' })).status).toBe(400);
  expect((await createTask(ALICE, { title: 'flexible', payload: {}, scheduled_at: 'tomorrow-ish' })).status).toBe(400);
  expect((await createTask(ALICE, { title: '../../etc/passwd', payload: {} })).status).toBe(400);
  expect((await createTask(ALICE, { title: 'never_uploaded', payload: {} })).status).toBe(404);
});

/** A task worker in its own process, as in production, so it can be killed. */
function spawnTaskWorker(): ChildProcess {
  return spawn(process.execPath, [require.resolve('ts-node/dist/bin'), '--transpile-only', path.join(ROOT, 'app/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...env, TASKFLOW_ROLES: 'task-worker', SANDBOX_POOL_SIZE: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

test('a worker killed mid-task: the task still completes once another worker runs', async () => {
  await taskWorkers?.shutdown();
  taskWorkers = undefined;
  let first: ChildProcess | undefined = spawnTaskWorker();
  let second: ChildProcess | undefined;
  try {
    const res = await createTask(ALICE, { title: 'flexible', payload: { sleep: 2 } });
    await waitForTask(ALICE, res.body.task_id, (t) => t.status === 'RUNNING', 90000);
    first.kill('SIGKILL');
    first = undefined;
    second = spawnTaskWorker();
    const t = await waitForTask(ALICE, res.body.task_id, undefined, 120000);
    expect(t).toMatchObject({ status: 'COMPLETED', result: { ok: true } });
    expect(t.attempts).toBeGreaterThanOrEqual(2);
  } finally {
    first?.kill('SIGKILL');
    if (second) {
      const exited = new Promise((r) => second!.once('exit', r));
      second.kill('SIGTERM');
      await exited;
    }
    await startTaskWorkersInProcess();
  }
}, 240000);
