/**
 * The operator's side of TaskFlow, against a real Temporal dev server, Docker + runsc and real processes:
 * a whole TaskFlow process (app/main.ts) becomes ready, validates, runs a task, shows it all on /metrics
 * and prints every line, the Temporal SDK's included, in one JSON format; /readyz says why not when
 * Temporal is down or no worker polls; search attributes are registered from their one definition.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import request from 'supertest';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { msToTs } from '@temporalio/common/lib/time';
import { ensureSearchAttributes, temporalHealthy } from '../app/temporal';
import { createApp } from '../src/api/app';
import { Readiness, pollersCheck, temporalCheck } from '../src/readiness';
import { TaskQueueProbe } from '../src/task-queues';
import { tasksNotEnabled } from '../src/tasks/task-service';
import type { ValidationService } from '../src/validation/service';
import { SEARCH_ATTRIBUTES } from '../domain/search-attributes';
import { silentLogger } from '../src/logger';
import { startTemporal, type StartedTemporal } from './helpers/temporal';
import { ALICE, suiteConfig, suiteEnv } from './helpers/validation';

const ROOT = path.resolve(__dirname, '..');

let temporal: StartedTemporal;

beforeAll(async () => {
  temporal = await startTemporal();
});

afterAll(async () => {
  await temporal?.stop();
});

describe('search attributes', () => {
  test('a namespace that lacks them gets each with its own type, once', async () => {
    // A fresh namespace has none of TaskFlow's attributes (the harness registers them in its own namespace only).
    const namespace = `bare-${randomUUID().slice(0, 8)}`;
    const { connection } = temporal.env;
    await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
    const config = suiteConfig(temporal.address, { TEMPORAL_NAMESPACE: namespace });
    const list = async () => (await connection.operatorService.listSearchAttributes({ namespace })).customAttributes ?? {};
    expect(Object.keys(await list())).toEqual(expect.not.arrayContaining(SEARCH_ATTRIBUTES.map((k) => k.name)));

    const logged: string[] = [];
    const log = { ...silentLogger, info: (m: string) => void logged.push(m), warn: (m: string) => void logged.push(m) };
    await expect(ensureSearchAttributes(temporal.env.client, config, log)).resolves.toBe(true);
    const have = await list();
    for (const k of SEARCH_ATTRIBUTES) expect(have[k.name]).toBe(encodeSearchAttributeIndexedValueType(k.type));
    expect(logged).toEqual(['registered search attributes']);

    // Idempotent: nothing left to add, nothing logged.
    await expect(ensureSearchAttributes(temporal.env.client, config, log)).resolves.toBe(true);
    expect(logged).toHaveLength(1);
  });

  test('a namespace that cannot take them is reported, not thrown', async () => {
    const config = suiteConfig(temporal.address, { TEMPORAL_NAMESPACE: 'no-such-namespace' });
    const warned: string[] = [];
    const log = { ...silentLogger, warn: (m: string) => void warned.push(m) };
    await expect(ensureSearchAttributes(temporal.env.client, config, log)).resolves.toBe(false);
    expect(warned[0]).toMatch(/register them by hand/);
  });
});

/** A port nothing listens on (for a moment). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The value of one series in Prometheus text (`name{a="b",...}`, labels in any order), or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('a whole TaskFlow process', () => {
  let child: ChildProcess;
  let exited: Promise<number | null>;
  let stderr = '';
  let stdout = '';
  let base: string;
  let ops: string;
  const api = (method: 'get' | 'post', p: string) => request(base)[method](p).set('Authorization', `Bearer ${ALICE}`);

  beforeAll(async () => {
    const [port, opsPort] = [await freePort(), await freePort()];
    base = `http://127.0.0.1:${port}`;
    ops = `http://127.0.0.1:${opsPort}`;
    child = spawn(process.execPath, [require.resolve('ts-node/dist/bin'), '--transpile-only', path.join(ROOT, 'app/main.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...suiteEnv(temporal.address),
        PORT: String(port),
        OPS_PORT: String(opsPort),
        LOG_LEVEL: 'info',
        TASK_WORKER_SLOTS: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    exited = new Promise((resolve) => child.once('exit', resolve));
  }, 30000);

  afterAll(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
  });

  test('/readyz: 503 while starting, then 200 once Temporal answers, workers poll and the sandbox starts containers', async () => {
    const seen = new Set<number>();
    const ready = await until(
      '/readyz 200',
      async () => {
        if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}:\n${stderr.slice(-3000)}`);
        const res = await request(base)
          .get('/readyz')
          .catch(() => undefined);
        if (res) seen.add(res.status);
        return res?.status === 200 ? res : undefined;
      },
      90000,
    );
    expect(ready.body).toEqual({
      status: 'ready',
      checks: {
        startup: { ok: true },
        temporal: { ok: true },
        database: { ok: true },
        pollers: { ok: true },
        // The release and platform as the registered runsc binary reports them (setup.sh registers systrap).
        sandbox: { ok: true, detail: expect.stringMatching(/^Docker answers, runsc \S*\d{8}\S* \(systrap\) starts containers$/) },
        workers: { ok: true },
      },
    });
    expect([...seen].sort()).toEqual([200, 503]); // listening before its workers and sandbox are
    expect((await request(base).get('/healthz')).body).toEqual({ status: 'ok', temporal: 'ok' });
    // OPS_PORT: the same operator's routes, and nothing else.
    expect((await request(ops).get('/readyz')).body).toEqual(ready.body);
    expect((await request(ops).get('/metrics')).status).toBe(200);
    expect((await request(ops).get('/tasks/').set('Authorization', `Bearer ${ALICE}`)).status).toBe(404);
  }, 120000);

  test('/metrics: requests, validations and findings, sandbox starts and runs, pools, task runs, queues, the SDK', async () => {
    const good = await api('post', '/tasks/upload_file')
      .query({ file_name: 'ops_good' })
      .attach('file', Buffer.from('async def handler(payload):\n    return {"ok": True}\n'), 'good.py');
    const bad = await api('post', '/tasks/upload_file')
      .query({ file_name: 'ops_bad' })
      .attach('file', Buffer.from('import os\ndef handler(payload):\n    return os.system("id")\n'), 'bad.py');
    expect([good.status, bad.status]).toEqual([202, 202]);
    const final = (id: string) =>
      until(`validation ${id}`, async () => {
        const res = await api('get', `/tasks/validation_status/${id}`);
        return ['VALIDATED', 'REJECTED'].includes(res.body.status) ? (res.body.status as string) : undefined;
      });
    expect(await final(good.body.validation_id)).toBe('VALIDATED');
    expect(await final(bad.body.validation_id)).toBe('REJECTED');
    const task = await api('post', '/tasks/').send({ title: 'ops_good', payload: {} });
    expect(task.status).toBe(201);
    await until('task COMPLETED', async () =>
      (await api('get', `/tasks/${task.body.task_id}`)).body.status === 'COMPLETED' ? true : undefined,
    );

    // What a client chooses (paths, ids, methods, tokens) never becomes a label value.
    const junk = `junk${randomUUID().replace(/-/g, '')}`;
    for (let i = 0; i < 20; i++) await request(base).get(`/${junk}/${i}`);
    await request(base).get(`/tasks/${junk}`).set('Authorization', 'Bearer not-a-token-at-all');
    await request(base).get(`/tasks/${junk}`).set('Authorization', `Bearer ${ALICE}`);

    const res = await request(base)
      .get('/metrics')
      .buffer(true)
      .parse((r, done) => {
        let text = '';
        r.on('data', (c: Buffer) => (text += c.toString('utf8')));
        r.on('end', () => done(null, text));
      });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = res.body as string;
    expect(text).not.toContain(junk);
    expect(sample(text, 'taskflow_http_requests_total', { method: 'POST', route: '/tasks/upload_file', status: '202', code: '' })).toBe(2);
    expect(sample(text, 'taskflow_http_requests_total', { method: 'GET', route: 'unmatched', status: '401', code: 'unauthorized' })).toBe(
      20,
    );
    expect(
      sample(text, 'taskflow_http_requests_total', { method: 'GET', route: '/tasks/{task_id}', status: '401', code: 'invalid_token' }),
    ).toBe(1);
    expect(sample(text, 'taskflow_http_requests_total', { method: 'GET', route: '/tasks/{task_id}', status: '404' })).toBe(1);
    expect(sample(text, 'taskflow_validations_total', { status: 'VALIDATED' })).toBe(1);
    expect(sample(text, 'taskflow_validations_total', { status: 'REJECTED' })).toBe(1);
    expect(sample(text, 'taskflow_validation_findings_total', { code: 'forbidden_call', severity: 'error', status: 'REJECTED' })).toBe(1);
    expect(sample(text, 'taskflow_sandbox_container_start_seconds_count', { kind: 'validation', result: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'taskflow_sandbox_container_start_seconds_count', { kind: 'keyed', result: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'taskflow_sandbox_run_seconds_count', { kind: 'check', result: 'ok' })).toBe(1);
    expect(sample(text, 'taskflow_sandbox_run_seconds_count', { kind: 'check', result: 'failed' })).toBe(1);
    expect(sample(text, 'taskflow_sandbox_run_seconds_count', { kind: 'validation', result: 'ok' })).toBe(1);
    expect(sample(text, 'taskflow_sandbox_run_seconds_count', { kind: 'keyed', result: 'ok' })).toBe(1);
    expect(sample(text, 'taskflow_sandbox_pool_containers', { pool: 'validation', state: 'ready' })).toBeDefined();
    expect(sample(text, 'taskflow_sandbox_pool_containers', { pool: 'keyed', state: 'idle' })).toBe(1);
    expect(sample(text, 'taskflow_sandbox_runtime_info', { runtime: 'runsc', platform: 'systrap' })).toBe(1);
    expect(sample(text, 'taskflow_task_runs_total', { priority: 'low', outcome: 'ok' })).toBe(1);
    expect(sample(text, 'taskflow_task_queue_backlog', { queue: 'taskflow-tasks', type: 'activity' })).toBe(0);
    expect(sample(text, 'taskflow_task_queue_pollers', { queue: 'taskflow-tasks', type: 'activity' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'temporal_workflow_completed', { task_queue: 'taskflow-tasks', workflow_type: 'runTask' })).toBe(1);
    expect(sample(text, 'temporal_activity_execution_latency_count', { activity_type: 'runTaskInSandbox' })).toBe(1);
    expect(sample(text, 'process_cpu_seconds_total')).toBeGreaterThan(0);
  }, 180000);

  test("every line it prints is one JSON format, the Temporal SDK's and its core's included", async () => {
    child.kill('SIGTERM'); // a worker's shutdown makes the SDK and its core log at INFO
    expect(await exited).toBe(0);
    expect(stdout).toBe('');
    const lines = stderr
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          throw new Error(`not a JSON line: ${l}`);
        }
      });
    for (const l of lines)
      expect(l).toMatchObject({ level: expect.any(String), time: expect.any(String), service: 'taskflow', msg: expect.any(String) });
    const from = (c: string) => lines.filter((l) => l.component === 'temporal' && l.sdkComponent === c);
    expect(from('worker').map((l) => l.msg)).toContain('Worker state changed');
    expect(from('core').length).toBeGreaterThan(0);
  }, 60000);
});

describe('/readyz says why not', () => {
  const queues = [`ready-v-${randomUUID()}`, `ready-h-${randomUUID()}`];

  /** An API whose readiness is made as app/main.ts makes it for the api role. */
  function apiOn(connection: Connection) {
    const probe = new TaskQueueProbe(connection, temporal.namespace, queues, { maxAgeMs: 0 });
    const healthy = () => temporalHealthy(connection, 1000);
    const readiness = new Readiness(0).add('temporal', temporalCheck(healthy)).add(
      'pollers',
      pollersCheck(() => probe.read(), queues),
    );
    return createApp({
      config: suiteConfig(temporal.address),
      keys: [],
      validations: {} as ValidationService,
      tasks: tasksNotEnabled,
      log: silentLogger,
      temporalHealthy: healthy,
      readiness,
    });
  }

  test('503 when Temporal is down', async () => {
    const connection = Connection.lazy({ address: `127.0.0.1:${await freePort()}` });
    try {
      const app = apiOn(connection);
      const res = await request(app).get('/readyz');
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({
        status: 'not_ready',
        checks: { temporal: { ok: false, detail: 'Temporal does not answer' }, pollers: { ok: false } },
      });
      expect((await request(app).get('/healthz')).status).toBe(503);
    } finally {
      await connection.close();
    }
  });

  test('503 while no worker polls a queue, 200 once workers poll them all', async () => {
    const app = apiOn(temporal.env.connection);
    const first = await request(app).get('/readyz');
    expect(first.status).toBe(503);
    expect(first.body.checks).toEqual({ temporal: { ok: true }, pollers: { ok: false, detail: `no worker polls ${queues.join(', ')}` } });

    const workers = await Promise.all(
      queues.map((taskQueue) =>
        Worker.create({
          connection: temporal.env.nativeConnection,
          namespace: temporal.namespace,
          taskQueue,
          activities: { noop: async () => undefined },
        }),
      ),
    );
    const running = workers.map((w) => w.run());
    try {
      const ready = await until(
        '/readyz 200',
        async () => {
          const res = await request(app).get('/readyz');
          return res.status === 200 ? res : undefined;
        },
        20000,
      );
      expect(ready.body).toEqual({ status: 'ready', checks: { temporal: { ok: true }, pollers: { ok: true } } });
    } finally {
      for (const w of workers) w.shutdown();
      await Promise.all(running);
    }
  });
});
