/**
 * Upload → validateTaskFile → VALIDATED/REJECTED, end to end: the API (supertest), a real Temporal
 * dev server, the validation worker in this process, and real gVisor sandboxes.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Worker, WorkflowBundleWithSourceMap } from '@temporalio/worker';
import request from 'supertest';
import type { Config } from '../src/config';
import { silentLogger } from '../src/logger';
import { sha256Hex } from '../src/storage';
import { bundleValidationWorkflows, createValidationWorker } from '../app/validation-worker';
import type { Sandbox } from '../sandbox';
import { statusQuery } from '../domain/validation';
import { validationWorkflowId, type ValidationStatus } from '../domain/validation';
import { fixture, startSandbox } from './helpers/sandbox';
import { startTemporal, waitForVisible, type StartedTemporal } from './helpers/temporal';
import {
  ALICE,
  BOB,
  buildApi,
  promotedSource,
  quarantined,
  RecordingTaskService,
  statusOf,
  suiteConfig,
  tree,
  upload,
  waitForStatus,
  type TestApi,
} from './helpers/validation';

let temporal: StartedTemporal;
let config: Config;
let sandbox: Sandbox;
let api: TestApi;
let worker: Worker;
let running: Promise<void>;
const tasks = new RecordingTaskService();

beforeAll(async () => {
  let bundle: WorkflowBundleWithSourceMap;
  [temporal, bundle] = await Promise.all([startTemporal(), bundleValidationWorkflows()]);
  config = suiteConfig(temporal.address, { SANDBOX_POOL_SIZE: '2' });
  sandbox = await startSandbox(config, { validationPool: true });
  api = await buildApi(config, temporal.env.client, tasks);
  worker = await createValidationWorker({
    config,
    sandbox,
    storage: api.storage,
    connection: temporal.env.nativeConnection,
    log: silentLogger,
    workflowBundle: bundle,
  });
  running = worker.run();
}, 180000);

afterAll(async () => {
  worker?.shutdown();
  await running;
  await sandbox?.close();
  await temporal?.stop();
});

const as = (token: string) => ({ Authorization: `Bearer ${token}` });

async function validate(token: string, name: string, source: string, testPayloads?: unknown): Promise<ValidationStatus> {
  const res = await upload(api.app, token, name, source, testPayloads);
  expect(res.status).toBe(202);
  return waitForStatus(api.app, token, res.body.validation_id);
}

/** The ValidationStatus values the workflow upserted, in order (from its history). */
async function statusTrail(id: string): Promise<string[]> {
  const history = await temporal.env.client.workflow.getHandle(validationWorkflowId(id)).fetchHistory();
  const decoder = new TextDecoder();
  return (history.events ?? []).flatMap((e) => {
    const fields = e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields;
    const raw = fields?.ValidationStatus?.data;
    return raw ? [JSON.parse(decoder.decode(raw)) as string] : [];
  });
}

test('a good file is VALIDATED, promoted with its record and version, and a task can be created from it', async () => {
  const source = fixture('good_async.py');
  const s = await validate(ALICE, 'good_async', source);
  expect(s).toMatchObject({ status: 'VALIDATED', owner: 'alice', file_name: 'good_async', sha256: sha256Hex(source), promoted: true });
  expect(s.findings.filter((f) => f.severity === 'error')).toEqual([]);
  expect(s.metrics).toMatchObject({ size_bytes: Buffer.byteLength(source), payloads_total: 1, payloads_ok: 1 });
  expect(s.metrics.static_check_ms).toBeGreaterThan(0);
  expect(s.metrics.sandbox_wall_ms).toBeGreaterThan(0);
  expect(Date.parse(s.finished_at!)).toBeGreaterThanOrEqual(Date.parse(s.created_at));

  // Promoted: the name's promoted version in the database, and this worker's read-only cached copy by sha256.
  expect(await promotedSource(api.storage, 'alice', 'good_async')).toBe(source);
  expect(await api.storage.files.promotion('alice', 'good_async')).toEqual({
    sha256: s.sha256,
    validation_id: s.validation_id,
    promoted_at: expect.any(String),
  });
  const cached = path.join(config.tasksDir, 'alice', `${s.sha256}.py`);
  expect(fs.statSync(cached).mode & 0o777).toBe(0o400);
  expect(fs.readFileSync(cached, 'utf8')).toBe(source);
  expect(await api.storage.files.loadVersion('alice', 'good_async', s.sha256)).toBe(source);
  expect((await quarantined(api.storage, s.validation_id)).source).toBeUndefined(); // the version holds the bytes

  // The record is final just before the workflow closes. Once closed, its status query still answers
  // (Temporal replays it), and so does GET.
  const handle = temporal.env.client.workflow.getHandle(validationWorkflowId(s.validation_id));
  await handle.result();
  expect((await handle.describe()).status.name).toBe('COMPLETED');
  expect(await handle.query(statusQuery)).toEqual(s);
  expect(await statusOf(api.app, ALICE, s.validation_id)).toEqual(s);
  expect(await statusTrail(s.validation_id)).toEqual(['PENDING', 'STATIC_CHECK', 'SANDBOX_RUN', 'VALIDATED']);
  const visible = await waitForVisible(
    temporal.env.client,
    `ValidationStatus = "VALIDATED" AND Owner = "alice" AND FileName = "good_async"`,
  );
  expect(visible.map((w) => w.workflowId)).toEqual([validationWorkflowId(s.validation_id)]);

  // Task creation is accepted and pinned to the validated sha256.
  const at = Math.floor(Date.now() / 1000) + 30 * 86400; // unix seconds, within MAX_SCHEDULE_AHEAD_DAYS
  const res = await request(api.app)
    .post('/tasks/')
    .set(as(ALICE))
    .send({ title: 'good_async', payload: { numbers: [1, 2] }, priority: 'high', scheduled_at: at });
  expect(res.status).toBe(201);
  expect(res.body).toMatchObject({ task_id: expect.any(String), title: 'good_async', priority: 'high' });
  expect(tasks.created.at(-1)).toEqual({
    owner: 'alice',
    title: 'good_async',
    sha256: s.sha256,
    validationId: s.validation_id,
    payload: { numbers: [1, 2] },
    priority: 'high',
    scheduledAt: new Date(at * 1000).toISOString(),
  });
});

describe('each rejection cause → REJECTED with a finding naming it, quarantined, never in TASKS_DIR', () => {
  const causes: [string, string, string][] = [
    ['syntax error', 'syntax_error.py', 'syntax_error'],
    ['no handler', 'no_handler.py', 'handler_missing'],
    ['wrong arity', 'wrong_arity.py', 'handler_arity'],
    ['forbidden import', 'subprocess_shell.py', 'forbidden_import'],
    ['timeout', 'sleep_forever.py', 'timeout'],
    ['memory', 'memory_bomb.py', 'memory_limit'],
    ['crash', 'os_exit.py', 'crashed'],
    ['raising handler', 'handler_raises.py', 'handler_raised'],
    // Past the checker and the audit hook: only gVisor's seccomp layer sees it (test/sandbox-syscalls.test.ts).
    ['forbidden system call', 'evade_spawn_interpreter.py', 'forbidden_syscall'],
  ];
  const ids = new Map<string, string>();

  beforeAll(async () => {
    // Upload them all at once: the worker works through them two at a time.
    for (const [, file] of causes) {
      const res = await upload(api.app, ALICE, file, fixture(file));
      expect(res.status).toBe(202);
      ids.set(file, res.body.validation_id);
    }
  });

  test.each(causes)('%s', async (_cause, file, code) => {
    const name = file.replace(/\.py$/, '');
    const id = ids.get(file)!;
    const s = await waitForStatus(api.app, ALICE, id);
    expect(s.status).toBe('REJECTED');
    expect(s.findings).toContainEqual(expect.objectContaining({ code, severity: 'error', message: expect.any(String) }));
    expect(s.finished_at).not.toBeNull();

    const kept = await quarantined(api.storage, id);
    expect(kept.source).toBe(fixture(file));
    expect(kept.final).toMatchObject({ validation_id: id, status: 'REJECTED', findings: s.findings });
    expect(await promotedSource(api.storage, 'alice', name)).toBeUndefined();
    expect(tree(config.tasksDir).filter((f) => f.includes(name) || f.includes(s.sha256))).toEqual([]);

    const create = await request(api.app).post('/tasks/').set(as(ALICE)).send({ title: name });
    expect(create.status).toBe(404);
  });

  test('a forbidden system call is named in the findings and in the kept report', async () => {
    const id = ids.get('evade_spawn_interpreter.py')!;
    const s = await waitForStatus(api.app, ALICE, id);
    expect(s.findings).toContainEqual(
      expect.objectContaining({ code: 'forbidden_syscall', message: expect.stringMatching(/^clone with payload 0: creates a process/) }),
    );
    const { report } = await quarantined(api.storage, id);
    expect(report).toMatchObject({
      status: 'forbidden',
      syscalls: [expect.objectContaining({ syscall: 'clone', nr: 56, payloadIndex: 0 })],
    });
  });

  test('a run-time rejection keeps the exact container spec and limits in its report', async () => {
    const id = ids.get('memory_bomb.py')!;
    await waitForStatus(api.app, ALICE, id);
    const { report } = await quarantined(api.storage, id);
    expect(report?.spec).toMatchObject({
      runtime: 'runsc',
      networkMode: 'none',
      readOnlyRootfs: true,
      limits: expect.objectContaining({ memoryMiB: 128 }),
    });
    expect(report?.status).toBe('memory_limit');
    // Under systrap the memory cgroup kills the handler's process and the container lives on (no exit).
    expect(report?.payloads).toEqual([
      expect.objectContaining({ status: 'error', error: expect.objectContaining({ type: 'MemoryLimitExceeded' }) }),
    ]);
    if (report?.exit) expect(report.exit).toMatchObject({ oom_killed: true });
  });
});

test('test payloads come from the upload field and the file; a payload that breaks the handler rejects it', async () => {
  const withField = await validate(ALICE, 'good_sync', fixture('good_sync.py'), [{ numbers: [1, 2] }, {}]);
  expect(withField).toMatchObject({ status: 'VALIDATED', metrics: { payloads_total: 2, payloads_ok: 2 } });
  const both = await validate(ALICE, 'good_with_test_payloads', fixture('good_with_test_payloads.py'), [{ name: 'x' }]);
  expect(both).toMatchObject({ status: 'VALIDATED', metrics: { payloads_total: 4, payloads_ok: 4 } });

  const divide = 'def handler(payload):\n    return {"q": 10 // payload["d"]}\n';
  expect((await validate(ALICE, 'divide', divide, [{ d: 5 }])).status).toBe('VALIDATED');
  const bad = await validate(ALICE, 'divide', divide, [{ d: 5 }, { d: 0 }]);
  expect(bad.status).toBe('REJECTED');
  expect(bad.findings).toContainEqual(
    expect.objectContaining({ code: 'handler_raised', message: expect.stringContaining('ZeroDivisionError') }),
  );
  // The rejected upload did not touch the promoted version, but it is now the name's last upload: 404.
  expect(await promotedSource(api.storage, 'alice', 'divide')).toBe(divide);
  expect((await request(api.app).post('/tasks/').set(as(ALICE)).send({ title: 'divide' })).status).toBe(404);
});

test('the status query answers while the sandbox runs', async () => {
  const slow = 'import asyncio\n\nasync def handler(payload):\n    await asyncio.sleep(1.5)\n    return {"ok": True}\n';
  const res = await upload(api.app, ALICE, 'slow', slow);
  const seen: string[] = [];
  const final = await waitForStatus(api.app, ALICE, res.body.validation_id, (s) => {
    if (seen.at(-1) !== s.status) seen.push(s.status);
    return s.status === 'VALIDATED' || s.status === 'REJECTED';
  });
  expect(final.status).toBe('VALIDATED');
  expect(seen).toContain('SANDBOX_RUN');
  const order = ['PENDING', 'STATIC_CHECK', 'SANDBOX_RUN', 'VALIDATED'];
  expect(seen.map((x) => order.indexOf(x))).toEqual([...seen.map((x) => order.indexOf(x))].sort());
});

test('a newer validated upload replaces the promoted file; older versions stay loadable; an out-of-order finish does not win', async () => {
  const v1 = 'def handler(payload):\n    return {"v": 1}\n';
  const v2 = 'def handler(payload):\n    return {"v": 2}\n';
  const s1 = await validate(ALICE, 'versioned', v1);
  const s2 = await validate(ALICE, 'versioned', v2);
  expect([s1.status, s2.status]).toEqual(['VALIDATED', 'VALIDATED']);
  expect(await promotedSource(api.storage, 'alice', 'versioned')).toBe(v2);
  expect(await api.storage.files.loadVersion('alice', 'versioned', s1.sha256)).toBe(v1);
  expect(await api.storage.files.loadVersion('alice', 'versioned', s2.sha256)).toBe(v2);

  // A slow upload followed by a fast one: the fast one is the last upload and must stay promoted.
  const slowOld = 'import asyncio\n\nasync def handler(payload):\n    await asyncio.sleep(2)\n    return {"v": "old"}\n';
  const fastNew = 'def handler(payload):\n    return {"v": "new"}\n';
  const old = await upload(api.app, ALICE, 'raced', slowOld);
  const neu = await upload(api.app, ALICE, 'raced', fastNew);
  const [sOld, sNew] = await Promise.all([
    waitForStatus(api.app, ALICE, old.body.validation_id),
    waitForStatus(api.app, ALICE, neu.body.validation_id),
  ]);
  expect(sNew).toMatchObject({ status: 'VALIDATED', promoted: true });
  expect(sOld).toMatchObject({ status: 'VALIDATED', promoted: false });
  expect(sOld.findings).toContainEqual(expect.objectContaining({ code: 'superseded', severity: 'warning' }));
  expect(await promotedSource(api.storage, 'alice', 'raced')).toBe(fastNew);
  await request(api.app).post('/tasks/').set(as(ALICE)).send({ title: 'raced' }).expect(201);
  expect(tasks.created.at(-1)?.sha256).toBe(sNew.sha256);
});

test('another owner cannot see, use, replace or delete a file', async () => {
  const source = fixture('good_sync.py');
  const s = await validate(ALICE, 'shared_name', source);
  expect(s.status).toBe('VALIDATED');
  expect((await request(api.app).get(`/tasks/validation_status/${s.validation_id}`).set(as(BOB))).status).toBe(404);
  expect((await request(api.app).post('/tasks/').set(as(BOB)).send({ title: 'shared_name' })).status).toBe(404);
  expect((await request(api.app).delete('/tasks/delete_file?file_name=shared_name').set(as(BOB))).status).toBe(404);

  // Bob's upload of the same name is his own file, in his own directory.
  const bobSource = 'def handler(payload):\n    return "bob"\n';
  const b = await validate(BOB, 'shared_name', bobSource);
  expect(b).toMatchObject({ status: 'VALIDATED', owner: 'bob' });
  expect(await promotedSource(api.storage, 'bob', 'shared_name')).toBe(bobSource);
  expect(await promotedSource(api.storage, 'alice', 'shared_name')).toBe(source);
  await request(api.app).post('/tasks/').set(as(BOB)).send({ title: 'shared_name' }).expect(201);
  expect(tasks.created.at(-1)).toMatchObject({ owner: 'bob', sha256: b.sha256 });
  await expect(api.storage.files.loadVersion('bob', 'shared_name', s.sha256)).rejects.toThrow(/gone/);
});

test('deleting a file removes the promoted copy; tasks can no longer be created; pinned versions stay', async () => {
  const source = 'def handler(payload):\n    return "bye"\n';
  const s = await validate(ALICE, 'to_delete', source);
  const del = await request(api.app).delete('/tasks/delete_file').query({ file_name: 'to_delete.py' }).set(as(ALICE));
  expect(del.status).toBe(200);
  expect(del.body).toEqual({ file_name: 'to_delete', deleted: true, sha256: s.sha256, validation_id: s.validation_id });
  expect(await promotedSource(api.storage, 'alice', 'to_delete')).toBeUndefined();
  expect((await request(api.app).post('/tasks/').set(as(ALICE)).send({ title: 'to_delete' })).status).toBe(404);
  expect(await api.storage.files.loadVersion('alice', 'to_delete', s.sha256)).toBe(source);
  expect((await request(api.app).delete('/tasks/delete_file?file_name=to_delete').set(as(ALICE))).status).toBe(404);
});
