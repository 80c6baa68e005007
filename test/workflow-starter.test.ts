/**
 * Eager workflow start (src/workflow-starter.ts) on a real dev server: a start on a queue a worker of this
 * process polls is handed straight to it; other queues, and everything after disableEager, start normally.
 */
import { randomUUID } from 'node:crypto';
import { Client } from '@temporalio/client';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { WorkflowStarter } from '../src/workflow-starter';
import { quietBundlerLogger } from '../app/validation-worker';
import { startTemporal, type StartedTemporal } from './helpers/temporal';

const LOCAL = 'starter-local';
const ELSEWHERE = 'starter-elsewhere';
let temporal: StartedTemporal;
let workers: Worker[] = [];
let running: Promise<void>[] = [];

beforeAll(async () => {
  const [bundle, t] = await Promise.all([
    bundleWorkflowCode({ workflowsPath: require.resolve('./helpers/harness-workflows'), logger: quietBundlerLogger }),
    startTemporal(),
  ]);
  temporal = t;
  // Both queues are served in this process, but only LOCAL is declared for eager starts.
  workers = await Promise.all(
    [LOCAL, ELSEWHERE].map((taskQueue) => Worker.create({ connection: temporal.env.nativeConnection, taskQueue, workflowBundle: bundle })),
  );
  running = workers.map((w) => w.run());
});

afterAll(async () => {
  for (const w of workers) w.shutdown();
  await Promise.all(running);
  await temporal?.stop();
});

test('eager on the declared queues, normal elsewhere and once disabled; the workflows run either way', async () => {
  const starter = new WorkflowStarter(temporal.env.client);
  starter.enableEager(new Client({ connection: temporal.env.nativeConnection }), [LOCAL]);
  const start = (taskQueue: string) =>
    starter.start('harnessGreet', { taskQueue, workflowId: `starter-${randomUUID()}`, args: ['x'] }, Date.now() + 10000);

  const eager = await start(LOCAL);
  expect(eager.eagerlyStarted).toBe(true);
  const other = await start(ELSEWHERE);
  expect(other.eagerlyStarted).toBe(false);
  starter.disableEager();
  const after = await start(LOCAL);
  expect(after.eagerlyStarted).toBe(false);
  for (const h of [eager, other, after]) expect(await h.result()).toBe('hello x');
});
