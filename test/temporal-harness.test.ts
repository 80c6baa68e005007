/** Self-test of test/helpers/temporal.ts: a real dev server, a worker, and a search-attribute query. */
import { randomUUID } from 'node:crypto';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { startTemporal, waitForVisible, type StartedTemporal } from './helpers/temporal';
import { FILE_NAME, OWNER, VALIDATION_STATUS } from '../domain/search-attributes';
import { harnessGreet } from './helpers/harness-workflows';

const TASK_QUEUE = 'harness-self-test';

let temporal: StartedTemporal | undefined;
let worker: Worker | undefined;
let running: Promise<void> | undefined;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  // Bundle and start the server concurrently: bundling is the slower of the two.
  [bundle, temporal] = await Promise.all([
    bundleWorkflowCode({ workflowsPath: require.resolve('./helpers/harness-workflows'), logger: quietLogger() }),
    startTemporal(),
  ]);
  worker = await Worker.create({
    connection: temporal.env.nativeConnection,
    namespace: temporal.namespace,
    taskQueue: TASK_QUEUE,
    workflowBundle: bundle,
  });
  running = worker.run();
});

afterAll(async () => {
  // Order matters: the worker must drain while the server is alive (stop() SIGKILLs it).
  worker?.shutdown();
  await running;
  await temporal?.stop();
});

test('starts a dev server on loopback', () => {
  expect(temporal!.address).toMatch(/^127\.0\.0\.1:\d+$/);
  expect(temporal!.namespace).toBe('default');
});

test('runs a workflow on a worker and finds it by search attribute', async () => {
  const client = temporal!.env.client;
  const fileName = `hello-${randomUUID()}.py`;
  const workflowId = `harness-${randomUUID()}`;
  const result = await client.workflow.execute(harnessGreet, {
    taskQueue: TASK_QUEUE,
    workflowId,
    args: ['taskflow'],
    typedSearchAttributes: [
      { key: FILE_NAME, value: fileName },
      { key: OWNER, value: 'alice' },
    ],
  });
  expect(result).toBe('hello taskflow');

  const seen = await waitForVisible(client, `FileName = "${fileName}" AND ValidationStatus = "VALIDATED" AND Owner = "alice"`);
  expect(seen.map((w) => w.workflowId)).toEqual([workflowId]);
  expect(seen[0].typedSearchAttributes.get(VALIDATION_STATUS)).toBe('VALIDATED');
});

test('registers all four TaskFlow search attributes', async () => {
  const res = await temporal!.env.connection.operatorService.listSearchAttributes({
    namespace: temporal!.namespace,
  });
  expect(Object.keys(res.customAttributes).sort()).toEqual(expect.arrayContaining(['FileName', 'Owner', 'TaskStatus', 'ValidationStatus']));
});

function quietLogger() {
  const noop = () => undefined;
  return { log: noop, trace: noop, debug: noop, info: noop, warn: noop, error: console.error };
}
