/**
 * The HTTP API against a real Temporal dev server, with no validation worker: input checks, auth,
 * owner isolation, 412 while pending, 503 + recovery when Temporal is unreachable, OpenAPI.
 * (The pipeline with real sandboxes is in validation-pipeline.test.ts.)
 */
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import request from 'supertest';
import { openApiDocument } from '../src/api/openapi';
import { resolveCredentials } from '../src/api/auth';
import { loadConfig, type Config } from '../src/config';
import { validationWorkflowId } from '../domain/validation';
import { startTemporal, waitForVisible, type StartedTemporal } from './helpers/temporal';
import { fixture } from './helpers/sandbox';
import { ALICE, stored, BOB, buildApi, RecordingTaskService, statusOf, suiteConfig, upload, type TestApi } from './helpers/validation';

let temporal: StartedTemporal;
let config: Config;
let api: TestApi;
const tasks = new RecordingTaskService();
const good = fixture('good_sync.py');

beforeAll(async () => {
  temporal = await startTemporal();
  config = suiteConfig(temporal.address, { MAX_UPLOAD_BYTES: '4096' });
  api = await buildApi(config, temporal.env.client, tasks);
});

afterAll(async () => {
  await temporal?.stop();
});

describe('bad uploads get the right 4xx and write nothing', () => {
  const cases: [string, () => request.Test, number, string][] = [
    ['traversal name ../../x', () => upload(api.app, ALICE, '../../x', good), 400, 'invalid_file_name'],
    ['traversal name with .py', () => upload(api.app, ALICE, '../x.py', good), 400, 'invalid_file_name'],
    ['absolute path', () => upload(api.app, ALICE, '/etc/passwd', good), 400, 'invalid_file_name'],
    ['name with NUL', () => upload(api.app, ALICE, 'a\u0000b', good), 400, 'invalid_file_name'],
    ['non-ASCII name', () => upload(api.app, ALICE, 'tâche', good), 400, 'invalid_file_name'],
    ['name too long', () => upload(api.app, ALICE, 'a'.repeat(65), good), 400, 'invalid_file_name'],
    ['Python keyword', () => upload(api.app, ALICE, 'import', good), 400, 'invalid_file_name'],
    ['empty name', () => upload(api.app, ALICE, '', good), 400, 'invalid_file_name'],
    [
      'no file_name',
      () => request(api.app).post('/tasks/upload_file').set('Authorization', `Bearer ${ALICE}`).attach('file', Buffer.from(good), 'a.py'),
      400,
      'invalid_file_name',
    ],
    ['empty file', () => upload(api.app, ALICE, 'empty', ''), 400, 'empty_file'],
    ['oversize file', () => upload(api.app, ALICE, 'big', `# ${'x'.repeat(5000)}\n${good}`), 413, 'file_too_large'],
    ['binary file', () => upload(api.app, ALICE, 'bin', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3])), 415, 'binary_file'],
    ['not UTF-8', () => upload(api.app, ALICE, 'latin', Buffer.from('x = "caf\xe9"\n', 'latin1')), 422, 'not_utf8'],
    [
      'image content type',
      () =>
        request(api.app)
          .post('/tasks/upload_file?file_name=img')
          .set('Authorization', `Bearer ${ALICE}`)
          .attach('file', Buffer.from(good), { filename: 'a.png', contentType: 'image/png' }),
      415,
      'unsupported_file_type',
    ],
    [
      'missing file field',
      () =>
        request(api.app).post('/tasks/upload_file?file_name=nofile').set('Authorization', `Bearer ${ALICE}`).field('test_payloads', '[{}]'),
      400,
      'missing_file',
    ],
    [
      'file in another field',
      () =>
        request(api.app)
          .post('/tasks/upload_file?file_name=other')
          .set('Authorization', `Bearer ${ALICE}`)
          .attach('upload', Buffer.from(good), 'a.py'),
      400,
      'unexpected_field',
    ],
    ['two files', () => upload(api.app, ALICE, 'two', good).attach('file', Buffer.from(good), 'b.py'), 400, 'bad_multipart'],
    [
      'not multipart',
      () =>
        request(api.app)
          .post('/tasks/upload_file?file_name=raw')
          .set('Authorization', `Bearer ${ALICE}`)
          .set('Content-Type', 'text/x-python')
          .send(good),
      415,
      'unsupported_media_type',
    ],
    ['test_payloads not JSON', () => upload(api.app, ALICE, 'tp', good).field('test_payloads', '{nope'), 400, 'invalid_test_payloads'],
    ['test_payloads not a list of objects', () => upload(api.app, ALICE, 'tp2', good, [1, 2]), 400, 'invalid_test_payloads'],
    [
      'no token',
      () => request(api.app).post('/tasks/upload_file?file_name=anon').attach('file', Buffer.from(good), 'a.py'),
      401,
      'unauthorized',
    ],
    ['wrong token', () => upload(api.app, 'not-a-valid-token-at-all', 'anon', good), 401, 'invalid_token'],
    [
      'basic auth',
      () => request(api.app).post('/tasks/upload_file?file_name=anon').auth('alice', ALICE).attach('file', Buffer.from(good), 'a.py'),
      401,
      'unauthorized',
    ],
  ];

  test.each(cases)('%s', async (_name, send, status, code) => {
    const before = await stored(config, api.storage);
    const res = await send();
    expect(res.status).toBe(status);
    expect(res.body).toEqual({ error: expect.objectContaining({ code, message: expect.any(String) }) });
    expect(JSON.stringify(res.body)).not.toMatch(/at .*\.ts:\d+/); // never a stack trace
    expect(await stored(config, api.storage)).toEqual(before);
  });
});

test('a good upload is stored with its record in the database, and its workflow started', async () => {
  const res = await upload(api.app, ALICE, 'good_sync.py', good);
  expect(res.status).toBe(202);
  const id = res.body.validation_id as string;
  expect(res.body).toEqual({
    validation_id: expect.stringMatching(/^[0-9a-f]{32}$/),
    status: 'PENDING',
    status_url: `/tasks/validation_status/${id}`,
    file_name: 'good_sync',
    sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
  });
  expect(res.headers.location).toBe(res.body.status_url);

  expect((await api.storage.files.uploadBytes(res.body.sha256)).toString('utf8')).toBe(good);
  expect(fs.readdirSync(config.tasksDir)).toEqual([]); // nothing promoted before validation
  expect(await api.storage.files.promotion('alice', 'good_sync')).toBeUndefined();

  const rec = await api.storage.records.get(id);
  expect(rec).toMatchObject({ owner: 'alice', file_name: 'good_sync', workflow_started: true, workflow_id: `validation-${id}` });
  expect((await api.storage.records.pendingStarts()).map((r) => r.validation_id)).not.toContain(id);

  const desc = await temporal.env.client.workflow.getHandle(validationWorkflowId(id)).describe();
  expect(desc.taskQueue).toBe(config.validationQueue);
  expect(desc.status.name).toBe('RUNNING');
  // Filterable in the Web UI before any worker touched it.
  const seen = await waitForVisible(temporal.env.client, `Owner = "alice" AND FileName = "good_sync" AND ValidationStatus = "PENDING"`);
  expect(seen.map((w) => w.workflowId)).toContain(validationWorkflowId(id));
});

test('while a validation is pending: status says so, task creation is 412, deletion is 409', async () => {
  const res = await upload(api.app, ALICE, 'pending_one', good);
  const id = res.body.validation_id as string;
  const s = await statusOf(api.app, ALICE, id);
  expect(s).toMatchObject({ validation_id: id, owner: 'alice', file_name: 'pending_one', status: 'PENDING', finished_at: null });

  const create = await request(api.app).post('/tasks/').set('Authorization', `Bearer ${ALICE}`).send({ title: 'pending_one', payload: {} });
  expect(create.status).toBe(412);
  expect(create.body.error).toMatchObject({ code: 'validation_pending', validation_id: id });

  const del = await request(api.app)
    .delete('/tasks/delete_file')
    .query({ file_name: 'pending_one' })
    .set('Authorization', `Bearer ${ALICE}`);
  expect(del.status).toBe(409);
  expect(tasks.created).toEqual([]);
});

test('unknown files and ids are 404; another owner sees nothing of alice', async () => {
  const res = await upload(api.app, ALICE, 'alice_only', good);
  const id = res.body.validation_id as string;
  const as = (token: string) => ({ Authorization: `Bearer ${token}` });

  expect((await request(api.app).get(`/tasks/validation_status/${id}`).set(as(BOB))).status).toBe(404);
  expect(
    (
      await request(api.app)
        .get(`/tasks/validation_status/${'0'.repeat(32)}`)
        .set(as(ALICE))
    ).status,
  ).toBe(404);
  expect((await request(api.app).get('/tasks/validation_status/..%2F..%2Fetc%2Fpasswd').set(as(ALICE))).status).toBe(404);
  // Bob's view of the same name: never uploaded by him.
  const create = await request(api.app).post('/tasks/').set(as(BOB)).send({ title: 'alice_only' });
  expect(create.status).toBe(404);
  expect((await request(api.app).post('/tasks/').set(as(ALICE)).send({ title: 'never_uploaded' })).status).toBe(404);
  expect((await request(api.app).delete('/tasks/delete_file?file_name=alice_only').set(as(BOB))).status).toBe(404);
  // 404 bodies do not tell "someone else's" from "unknown".
  const bobView = await request(api.app).get(`/tasks/validation_status/${id}`).set(as(BOB));
  expect(bobView.body.error.code).toBe('validation_not_found');
});

test('task creation validates its body', async () => {
  const as = { Authorization: `Bearer ${ALICE}` };
  const bad = [
    { payload: {} },
    { title: '../x' },
    { title: 'x', priority: 'urgent' },
    { title: 'x', scheduled_at: 'tomorrow' },
    { title: 'x', payload: [1] },
    { title: 'x', extra: 1 },
  ];
  for (const body of bad) {
    const res = await request(api.app).post('/tasks/').set(as).send(body);
    expect([res.status, body]).toEqual([400, body]);
  }
  expect((await request(api.app).post('/tasks/').set(as).set('Content-Type', 'text/plain').send('{"title":"x"}')).status).toBe(415);
  expect((await request(api.app).post('/tasks/').set(as).set('Content-Type', 'application/json').send('{"title":')).status).toBe(400);
});

test('Temporal unreachable: 503, the upload is kept, and a restarted API starts its validation', async () => {
  // An API whose Temporal is gone (nothing listens on port 1).
  const deadConnection = Connection.lazy({ address: '127.0.0.1:1', connectTimeout: 500 });
  const dead = await buildApi(config, new Client({ connection: deadConnection, namespace: 'default' }));
  const res = await upload(dead.app, ALICE, 'during_outage', good);
  expect(res.status).toBe(503);
  expect(res.body.error).toMatchObject({ code: 'temporal_unavailable', validation_id: expect.stringMatching(/^[0-9a-f]{32}$/) });
  const id = res.body.error.validation_id as string;
  const rec = await dead.storage.records.get(id);
  expect(rec).toMatchObject({ workflow_started: false, start_error: expect.any(String), file_name: 'during_outage' });
  expect((await dead.storage.records.pendingStarts()).map((r) => r.validation_id)).toContain(id);
  // Status is answerable from the record meanwhile.
  expect((await statusOf(dead.app, ALICE, id)).status).toBe('PENDING');
  await deadConnection.close();

  // "Restart": a new API process over the same directories, Temporal reachable again.
  const restarted = await buildApi(config, temporal.env.client);
  expect(await restarted.validations.recoverPendingStarts()).toBe(1);
  expect((await restarted.storage.records.pendingStarts()).map((r) => r.validation_id)).not.toContain(id);
  expect(await restarted.storage.records.get(id)).toMatchObject({ workflow_started: true });
  expect((await temporal.env.client.workflow.getHandle(validationWorkflowId(id)).describe()).status.name).toBe('RUNNING');
  // A second pass is a no-op; a start that raced a crash ("already started") counts as started.
  expect(await restarted.validations.recoverPendingStarts()).toBe(0);
});

test('dev mode: one owner, a generated token kept in DATA_DIR/dev-token (0600) and reused', async () => {
  fs.mkdirSync(config.dataDir, { recursive: true });
  const dataDir = fs.mkdtempSync(path.join(config.dataDir, 'dev-'));
  const cfg = loadConfig({ DATA_DIR: dataDir });
  const first = await resolveCredentials(cfg);
  expect(first.dev).toMatchObject({ created: true, file: path.join(dataDir, 'dev-token') });
  expect(first.keys).toEqual([{ owner: 'dev', token: first.dev!.token }]);
  expect(fs.statSync(path.join(dataDir, 'dev-token')).mode & 0o777).toBe(0o600);
  const again = await resolveCredentials(cfg);
  expect(again.dev).toMatchObject({ created: false, token: first.dev!.token });
  // A symlink planted in its place is refused, not followed.
  const other = fs.mkdtempSync(path.join(config.dataDir, 'dev2-'));
  fs.symlinkSync('/etc/hostname', path.join(other, 'dev-token'));
  await expect(resolveCredentials(loadConfig({ DATA_DIR: other }))).rejects.toThrow();
  // Configured keys switch dev mode off.
  expect((await resolveCredentials(config)).dev).toBeUndefined();
});

test('healthz and openapi.json need no token; unknown routes are JSON 404s', async () => {
  expect((await request(api.app).get('/healthz')).body).toEqual({ status: 'ok', temporal: 'ok' });
  const doc = (await request(api.app).get('/openapi.json')).body;
  expect(doc).toEqual(openApiDocument());
  expect(Object.keys(doc.paths).sort()).toEqual(
    [
      '/healthz',
      '/metrics',
      '/openapi.json',
      '/readyz',
      '/tasks/',
      '/tasks/delete_file',
      '/tasks/upload_file',
      '/tasks/validation_status/{validation_id}',
      '/tasks/{task_id}',
    ].sort(),
  );
  expect(doc.paths['/tasks/upload_file'].post.responses).toHaveProperty('413');
  const res = await request(api.app).get('/nope').set('Authorization', `Bearer ${ALICE}`);
  expect(res.status).toBe(404);
  expect(res.body.error.code).toBe('route_not_found');
});
