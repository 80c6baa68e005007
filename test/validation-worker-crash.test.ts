/**
 * Crash safety of the validation worker: a real worker process (app/main.ts, role
 * validation-worker) is SIGKILLed in the middle of sandbox runs; once another worker process is
 * up, the validations finish with the right answers (the sandbox run is retried, not lost).
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
import { ALICE, buildApi, statusOf, suiteEnv, upload, waitForStatus, type TestApi } from './helpers/validation';

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

/** Starts `app/main.ts` as a validation worker and resolves once it polls its task queue. */
async function startWorkerProcess(): Promise<WorkerProcess> {
  const child = spawn(path.join(ROOT, 'node_modules/.bin/ts-node'), ['--transpile-only', 'app/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, ...env, TASKFLOW_ROLES: 'validation-worker', LOG_LEVEL: 'info' },
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
      if (stderr.includes('"msg":"validation worker polling"')) {
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
  expect(fs.existsSync(path.join(config.tasksDir, 'alice', 'slow_good.py'))).toBe(false);

  const second = await startWorkerProcess();
  try {
    const [g, b] = await Promise.all([
      waitForStatus(api.app, ALICE, goodId, undefined, 60000),
      waitForStatus(api.app, ALICE, badId, undefined, 60000),
    ]);
    expect(g).toMatchObject({ status: 'VALIDATED', promoted: true, metrics: { payloads_ok: 1 } });
    expect(fs.readFileSync(path.join(config.tasksDir, 'alice', 'slow_good.py'), 'utf8')).toBe(good);
    expect(b.status).toBe('REJECTED');
    expect(b.findings).toContainEqual(expect.objectContaining({ code: 'handler_raised', message: expect.stringContaining('late failure') }));
    expect(fs.existsSync(path.join(config.quarantineDir, `${badId}.py`))).toBe(true);
    expect(fs.existsSync(path.join(config.tasksDir, 'alice', 'slow_bad.py'))).toBe(false);

    // The sandbox run really was retried: its second attempt ran on the new worker.
    for (const id of [goodId, badId]) {
      const history = await temporal.env.client.workflow.getHandle(validationWorkflowId(id)).fetchHistory();
      const attempts = (history.events ?? []).flatMap((e) => (e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 1] : []));
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
