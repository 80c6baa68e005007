/**
 * Past one host: two API processes and two worker processes (app/main.ts), each with its own empty
 * DATA_DIR and TASKS_DIR and its own port, sharing nothing but one Temporal dev server and one
 * PostgreSQL database. Uploads through replica 1 are validated by either worker, polled and run through
 * replica 2, deleted through either; quotas hold in total; a worker's cache removed mid-run changes nothing.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { freePort, startApp, type Child } from './helpers/processes';
import { startTemporal, type StartedTemporal } from './helpers/temporal';
import { ALICE, BOB, suiteEnv } from './helpers/validation';

let temporal: StartedTemporal;
const apis: { proc: Child; base: string; dirs: string[] }[] = [];
const workers: { proc: Child; tasksDir: string }[] = [];

/** A host of its own: empty directories, its own ports. */
async function host(): Promise<Record<string, string>> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-host-'));
  return {
    DATA_DIR: path.join(root, 'data'),
    TASKS_DIR: path.join(root, 'tasks'),
    HOST: '127.0.0.1',
    PORT: String(await freePort()),
  };
}

beforeAll(async () => {
  temporal = await startTemporal();
  const shared = suiteEnv(temporal.address, { QUOTA_UPLOADS_PER_MINUTE: '12', QUOTA_VALIDATIONS_IN_FLIGHT: '1000' });
  const [h1, h2, h3, h4] = await Promise.all([host(), host(), host(), host()]);
  const started = await Promise.all([
    startApp({ env: { ...shared, ...h1, TASKFLOW_ROLES: 'api' }, ready: '"msg":"API listening"' }),
    startApp({ env: { ...shared, ...h2, TASKFLOW_ROLES: 'api' }, ready: '"msg":"API listening"' }),
    startApp({ env: { ...shared, ...h3, TASKFLOW_ROLES: 'validation-worker,task-worker' }, ready: '"msg":"validation worker polling"' }),
    startApp({ env: { ...shared, ...h4, TASKFLOW_ROLES: 'validation-worker,task-worker' }, ready: '"msg":"validation worker polling"' }),
  ]);
  apis.push(
    { proc: started[0], base: `http://127.0.0.1:${h1.PORT}`, dirs: [h1.DATA_DIR, h1.TASKS_DIR] },
    { proc: started[1], base: `http://127.0.0.1:${h2.PORT}`, dirs: [h2.DATA_DIR, h2.TASKS_DIR] },
  );
  workers.push({ proc: started[2], tasksDir: h3.TASKS_DIR }, { proc: started[3], tasksDir: h4.TASKS_DIR });
}, 240000);

afterAll(async () => {
  // Graceful stops: each drains its work and removes its sandboxes.
  for (const p of [...apis.map((a) => a.proc), ...workers.map((w) => w.proc)]) expect(await p.stop()).toBe(0);
  await temporal?.stop();
}, 120000);

const as = (token: string) => ({ Authorization: `Bearer ${token}` });
const source = (i: number) => `def handler(payload):\n    return {"file": ${i}, "double": payload.get("n", 0) * 2}\n`;
const uploadTo = (base: string, token: string, name: string, text: string) =>
  request(base).post(`/tasks/upload_file?file_name=${name}`).set(as(token)).attach('file', Buffer.from(text), `${name}.py`);
const finalValidation = async (base: string, id: string) =>
  (await request(base).get(`/tasks/validation_status/${id}?wait=60&until=final`).set(as(ALICE)).expect(200)).body;
const runVia = async (create: string, poll: string, title: string, n: number) => {
  const t = await request(create).post('/tasks/').set(as(ALICE)).send({ title, payload: { n } }).expect(201);
  return (await request(poll).get(`/tasks/${t.body.task_id}?wait=60&until=final`).set(as(ALICE)).expect(200)).body;
};

test('uploads through replica 1 are validated by the workers and answered, run and deleted through either replica', async () => {
  const [one, two] = apis.map((a) => a.base);
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) ids.push((await uploadTo(one, ALICE, `shared_${i}`, source(i)).expect(202)).body.validation_id);
  const finals = await Promise.all(ids.map((id) => finalValidation(two, id)));
  expect(finals.map((s) => [s.status, s.promoted])).toEqual(ids.map(() => ['VALIDATED', true]));
  // Neither API host keeps a byte of it: everything is in the database.
  for (const a of apis) for (const dir of a.dirs) expect(fs.existsSync(dir) ? fs.readdirSync(dir) : []).toEqual([]);

  // Tasks created through one replica, read through the other: each runs on whichever worker takes it.
  const results = await Promise.all(ids.map((_, i) => runVia(two, one, `shared_${i}`, i)));
  expect(results.map((t) => [t.status, t.result])).toEqual(ids.map((_, i) => ['COMPLETED', { file: i, double: 2 * i }]));

  // A worker's cache removed mid-run (or the whole host's): the next tasks fetch their versions again.
  for (const w of workers) fs.rmSync(w.tasksDir, { recursive: true, force: true });
  const again = await Promise.all(ids.map((_, i) => runVia(one, two, `shared_${i}`, 10 + i)));
  expect(again.map((t) => [t.status, t.result])).toEqual(ids.map((_, i) => ['COMPLETED', { file: i, double: 2 * (10 + i) }]));

  // Deleted through either replica, and both agree at once.
  await request(two).delete('/tasks/delete_file?file_name=shared_0').set(as(ALICE)).expect(200);
  await request(one).delete('/tasks/delete_file?file_name=shared_1').set(as(ALICE)).expect(200);
  for (const base of [one, two]) {
    for (const name of ['shared_0', 'shared_1'])
      expect(
        (
          await request(base)
            .post('/tasks/')
            .set(as(ALICE))
            .send({ title: name, payload: { n: 1 } })
        ).status,
      ).toBe(404);
    await request(base).delete('/tasks/delete_file?file_name=shared_0').set(as(ALICE)).expect(404);
  }
}, 300000);

test('quotas hold in total across replicas: 30 concurrent uploads through both, exactly the 12 per minute admitted', async () => {
  const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => uploadTo(apis[i % 2].base, BOB, `flood_${i}`, source(i))));
  expect(answers.filter((r) => r.status === 202)).toHaveLength(12);
  for (const r of answers.filter((r) => r.status !== 202)) {
    expect(r.status).toBe(429);
    expect(r.body.error).toMatchObject({ code: 'quota_exceeded', limit: 'uploads_per_minute', max: 12 });
  }
  // Both replicas keep refusing: the window is shared, not per process.
  for (const a of apis) expect((await uploadTo(a.base, BOB, 'one_more', source(99))).status).toBe(429);
}, 120000);
