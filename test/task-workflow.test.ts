/**
 * Task execution below the API: the `runTask` workflow and its activity on a real Temporal dev
 * server, running handlers in real runsc sandboxes through the keyed pool.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { WorkflowHandle } from '@temporalio/client';
import { silentLogger } from '../src/logger';
import { bundleTaskWorkflows, startTaskWorkers, type RunningTaskWorkers } from '../app/task-worker';
import { VersionUnavailableError } from '../src/storage';
import { sha256, type Sandbox } from '../sandbox';
import { TASK_WORKFLOW as runTask } from '../domain/task';
import { taskPriority } from '../domain/priority';
import { taskWorkflowId, type TaskInput, type TaskPriority, type TaskState } from '../domain/task';
import { fixture, startSandbox, testConfig } from './helpers/sandbox';
import { startTemporal, type StartedTemporal } from './helpers/temporal';

const config = testConfig({ TASK_WORKER_SLOTS: '1', TASK_PAYLOAD_TIMEOUT_MS: '3000' });
let temporal: StartedTemporal;
let sandbox: Sandbox;
let bundle: WorkflowBundleWithSourceMap;
let workers: RunningTaskWorkers | undefined;
/** The "storage" of validated versions for this suite: sha256 → source. */
const versions = new Map<string, string>();

const loadVersion = async (_owner: string, _title: string, sha: string) => {
  const src = versions.get(sha);
  if (src === undefined || sha256(src) !== sha) throw new VersionUnavailableError(`version ${sha.slice(0, 12)} is gone`);
  return src;
};

async function startWorkers(): Promise<void> {
  workers = await startTaskWorkers({
    config,
    sandbox,
    connection: temporal.env.nativeConnection,
    client: temporal.env.client,
    log: silentLogger,
    loadVersion,
    // This suite starts its workflows straight on Temporal: there are no task rows to finish.
    taskFinished: async () => undefined,
    workflowBundle: bundle,
  });
}

async function stopWorkers(): Promise<void> {
  await workers?.shutdown();
  workers = undefined;
}

beforeAll(async () => {
  [temporal, sandbox, bundle] = await Promise.all([
    startTemporal(),
    startSandbox(config, { keyedLimits: config.taskLimits }),
    bundleTaskWorkflows(),
  ]);
  await startWorkers();
}, 180000);

afterAll(async () => {
  await stopWorkers();
  await sandbox?.close();
  await temporal?.stop();
});

function register(file: string): { title: string; sha: string } {
  const src = fixture(file);
  const sha = sha256(src);
  versions.set(sha, src);
  return { title: file.replace(/\.py$/, ''), sha };
}

async function start(file: string, payload: unknown, opts: { priority?: TaskPriority; scheduledAt?: string } = {}) {
  const { title, sha } = register(file);
  const input: TaskInput = {
    taskId: crypto.randomUUID(),
    owner: 'alice',
    title,
    sha256: sha,
    payload,
    priority: opts.priority ?? 'low',
    createdAt: new Date().toISOString(),
    ...(opts.scheduledAt ? { scheduledAt: opts.scheduledAt } : {}),
  };
  const handle = await temporal.env.client.workflow.start(runTask, {
    taskQueue: config.taskQueue,
    workflowId: taskWorkflowId(input.taskId),
    priority: taskPriority(input.priority, input.owner),
    args: [input],
  });
  return handle;
}

const finish = async (file: string, payload: unknown = {}): Promise<TaskState> => (await start(file, payload)).result();

test('async and sync handlers complete with their results', async () => {
  const a = await finish('good_async.py', { numbers: [1, 2] });
  expect(a).toMatchObject({ status: 'COMPLETED', result: { sum: 3 }, attempts: 1 });
  expect(a.metrics).toMatchObject({ runtime: 'runsc' });
  const s = await finish('good_sync.py', { numbers: [5] });
  expect(s).toMatchObject({ status: 'COMPLETED', result: { sum: 5, kind: 'sync' } });
});

test('a raising handler fails at once with its error', async () => {
  const t = await finish('handler_raises.py');
  expect(t.status).toBe('FAILED');
  expect(t.attempts).toBe(1); // not retried
  expect(t.error).toMatchObject({ type: 'HandlerFailed', message: expect.stringContaining('7f3a9c') });
});

test('timeouts and the memory limit fail the task naming the cause', async () => {
  const slow = await finish('sleep_forever.py');
  expect(slow).toMatchObject({ status: 'FAILED', error: { type: 'HandlerTimeout' } });
  const fat = await finish('memory_bomb.py');
  expect(fat).toMatchObject({ status: 'FAILED', error: { type: 'LimitExceeded', message: expect.stringContaining('memory') } });
});

test('a production run is contained: no secrets, no host network', async () => {
  process.env.TASKFLOW_TEST_SECRET = 's3cr3t-in-the-worker-env';
  const env = await finish('read_env.py');
  expect(env.status).toBe('COMPLETED');
  expect(JSON.stringify(env)).not.toContain('s3cr3t-in-the-worker-env');

  let connections = 0;
  const server = net.createServer(() => void connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const t = await finish('connect_localhost.py', { port: (server.address() as net.AddressInfo).port });
    expect(t).toMatchObject({ status: 'FAILED', error: { type: 'ForbiddenBehaviour' } });
    expect(connections).toBe(0);
  } finally {
    server.close();
  }
});

test('a pinned version that is gone fails clearly', async () => {
  const { title } = register('good_sync.py');
  const handle = await temporal.env.client.workflow.start(runTask, {
    taskQueue: config.taskQueue,
    workflowId: taskWorkflowId(crypto.randomUUID()),
    args: [
      { taskId: 'x', owner: 'alice', title, sha256: 'a'.repeat(64), payload: {}, priority: 'low', createdAt: new Date().toISOString() },
    ],
  });
  expect(await handle.result()).toMatchObject({ status: 'FAILED', error: { type: 'VersionUnavailable' } });
});

test('cancelling a running task kills it and records CANCELLED', async () => {
  const handle = await start('sleep_forever.py', {});
  await waitForStatus(handle.workflowId, 'RUNNING');
  await handle.cancel();
  const t = await handle.result();
  expect(t.status).toBe('CANCELLED');
});

test('a scheduled task waits durably and runs after its time, not before', async () => {
  const at = new Date(Date.now() + 4000).toISOString();
  const handle = await start('good_sync.py', { numbers: [1] }, { scheduledAt: at });
  await waitForStatus(handle.workflowId, 'SCHEDULED');
  const t = await handle.result();
  expect(t.status).toBe('COMPLETED');
  expect(Date.parse(t.started_at!)).toBeGreaterThanOrEqual(Date.parse(at));
});

test('under a backlog, high-priority tasks run before low ones', async () => {
  await stopWorkers();
  const low = [];
  const high = [];
  for (let i = 0; i < 3; i++) low.push(await start('good_sync.py', { numbers: [i] }, { priority: 'low' }));
  for (let i = 0; i < 3; i++) high.push(await start('good_sync.py', { numbers: [i] }, { priority: 'high' }));
  // Priority orders a backlog. Let a workflow-only worker schedule all six runs first: with the
  // activity worker up from the start, whichever workflow task finished first could take the free
  // slot by eager dispatch, which never passes through the queue's priority order.
  await scheduleActivitiesOnly([...low, ...high]);
  await startWorkers();
  const results = await Promise.all([...low, ...high].map((h) => h.result()));
  const started = (r: TaskState[]) => r.map((t) => Date.parse(t.started_at!));
  const lastHigh = Math.max(...started(results.slice(3)));
  const firstLow = Math.min(...started(results.slice(0, 3)));
  expect(results.every((r) => r.status === 'COMPLETED')).toBe(true);
  expect(lastHigh).toBeLessThanOrEqual(firstLow);
});

async function scheduleActivitiesOnly(handles: WorkflowHandle[]): Promise<void> {
  const worker = await Worker.create({
    connection: temporal.env.nativeConnection,
    namespace: config.temporal.namespace,
    taskQueue: config.taskQueue,
    workflowBundle: bundle,
  });
  const done = worker.run();
  try {
    const until = Date.now() + 30000;
    for (;;) {
      const pending = await Promise.all(handles.map(async (h) => (await h.describe()).raw.pendingActivities?.length ?? 0));
      if (pending.every((n) => n === 1)) break;
      if (Date.now() > until) throw new Error(`runs never all scheduled (pending: ${pending.join(',')})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    worker.shutdown();
    await done;
  }
}

async function waitForStatus(workflowId: string, status: string, timeoutMs = 30000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const memo = (await temporal.env.client.workflow.getHandle(workflowId).describe()).memo as { state?: TaskState } | undefined;
    if (memo?.state?.status === status) return;
    if (Date.now() > until) throw new Error(`task never reached ${status} (last: ${memo?.state?.status})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
