/**
 * Per-owner quotas and rate limits over HTTP, on a real Temporal dev server: past each limit the
 * answer is 429 with Retry-After and `error.limit` naming it, and nothing of the refused request is
 * kept (no staged bytes, no record, no workflow). Counts that matter survive an API restart (they
 * are read from the records and from Temporal's visibility). The tasks part has a real validation
 * worker (runsc) to validate the file the tasks use, and a task worker that carries out cancellations.
 */
import request from 'supertest';
import type { Config } from '../src/config';
import { silentLogger } from '../src/logger';
import { TemporalTaskService } from '../src/tasks/temporal-task-service';
import { TASK_WORKFLOW } from '../domain/task';
import { testConfig } from './helpers/sandbox';
import { startPipeline, type Pipeline } from './helpers/pipeline';
import { startTemporal, waitForVisible, type StartedTemporal } from './helpers/temporal';
import { ALICE, BOB, stored, buildApi, suiteEnv, upload, waitForStatus, type TestApi } from './helpers/validation';

let temporal: StartedTemporal;

beforeAll(async () => {
  temporal = await startTemporal();
}, 60000);

afterAll(async () => {
  await temporal?.stop();
});

const GOOD = 'def handler(payload):\n    return {"ok": True}\n';

function expectRefused(res: request.Response, limit: string, max: number): void {
  expect(res.status).toBe(429);
  expect(res.body.error).toMatchObject({ code: 'quota_exceeded', limit, max, message: expect.any(String) });
  const retryAfter = Number(res.headers['retry-after']);
  expect(Number.isInteger(retryAfter) && retryAfter >= 1).toBe(true);
  expect(res.body.error.retry_after_s).toBe(retryAfter);
}

/** An API on its own directories and validation queue (no worker: uploads stay in flight). */
async function api(env: Record<string, string>): Promise<{ config: Config; api: TestApi }> {
  const config = testConfig(suiteEnv(temporal.address, env));
  return { config, api: await buildApi(config, temporal.env.client) };
}

test('uploads per minute: the next one is refused until the window frees a place', async () => {
  const { config, api: a } = await api({ QUOTA_UPLOADS_PER_MINUTE: '3' });
  for (let i = 0; i < 3; i++) await upload(a.app, ALICE, `rate_${i}`, GOOD).expect(202);
  const before = await stored(config, a.storage);
  const res = await upload(a.app, ALICE, 'rate_3', GOOD);
  expectRefused(res, 'uploads_per_minute', 3);
  expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(60);
  expect(await stored(config, a.storage)).toEqual(before);
  // Another owner has a window of their own.
  await upload(a.app, BOB, 'rate_0', GOOD).expect(202);
});

test('validations in flight: counted from the records, also by a restarted API', async () => {
  const { config, api: a } = await api({ QUOTA_VALIDATIONS_IN_FLIGHT: '2' });
  await upload(a.app, ALICE, 'busy_0', GOOD).expect(202);
  await upload(a.app, ALICE, 'busy_1', GOOD).expect(202);
  const before = await stored(config, a.storage);
  expectRefused(await upload(a.app, ALICE, 'busy_2', GOOD), 'validations_in_flight', 2);
  expect(await stored(config, a.storage)).toEqual(before);

  // A new API process on the same data (nothing in memory) still sees both in flight.
  const restarted = await buildApi(config, temporal.env.client);
  expectRefused(await upload(restarted.app, ALICE, 'busy_2', GOOD), 'validations_in_flight', 2);
  await upload(restarted.app, BOB, 'busy_0', GOOD).expect(202);
});

test('concurrent uploads cannot both take the last place', async () => {
  const { api: a } = await api({ QUOTA_VALIDATIONS_IN_FLIGHT: '3' });
  const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => upload(a.app, ALICE, `race_${i}`, GOOD)));
  expect(answers.filter((r) => r.status === 202)).toHaveLength(3);
  for (const r of answers.filter((r) => r.status !== 202)) expectRefused(r, 'validations_in_flight', 3);
});

test('two API replicas on one database, 200 concurrent uploads from one owner: exactly the quota is admitted', async () => {
  const { config, api: one } = await api({ QUOTA_VALIDATIONS_IN_FLIGHT: '25' });
  const two = await buildApi(config, temporal.env.client); // its own pool and process state: it shares only the database
  const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => upload(i % 2 ? two.app : one.app, ALICE, `flood_${i}`, GOOD)));
  expect(answers.filter((r) => r.status === 202)).toHaveLength(25);
  for (const r of answers.filter((r) => r.status !== 202)) expectRefused(r, 'validations_in_flight', 25);
  const { rows } = await one.storage.db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM validations WHERE owner = 'alice'");
  expect(rows[0].n).toBe(25);
  await two.storage.close();
});

test('file names: a new name past the limit is refused, a name the owner has is not', async () => {
  const { config, api: a } = await api({ QUOTA_FILE_NAMES: '2' });
  await upload(a.app, ALICE, 'name_a', GOOD).expect(202);
  await upload(a.app, ALICE, 'name_b', GOOD).expect(202);
  const before = await stored(config, a.storage);
  expectRefused(await upload(a.app, ALICE, 'name_c', GOOD), 'file_names', 2);
  expect(await stored(config, a.storage)).toEqual(before);
  // Re-uploading a name it already has is fine.
  await upload(a.app, ALICE, 'name_a', GOOD).expect(202);
});

test('stored bytes: an upload that would pass the owner’s storage is refused', async () => {
  const { config, api: a } = await api({ QUOTA_STORED_MIB: '1' });
  const big = `def handler(payload):\n    return 1\n${'# padding padding padding padding padding padding\n'.repeat(5000)}`; // ~250 KB
  for (let i = 0; i < 4; i++) await upload(a.app, ALICE, `big_${i}`, big).expect(202);
  const before = await stored(config, a.storage);
  const res = await upload(a.app, ALICE, 'big_4', big);
  expectRefused(res, 'stored_bytes', 1024 * 1024);
  expect(res.body.error.message).toContain(`${4 * Buffer.byteLength(big)} bytes in use`);
  expect(await stored(config, a.storage)).toEqual(before);
  await upload(a.app, ALICE, 'small', GOOD).expect(202); // what still fits is accepted
});

describe('tasks', () => {
  let config: Config;
  let a: TestApi;
  // Task workers only to carry out cancellations: the tasks here are scheduled an hour ahead.
  let pipeline: Pipeline | undefined;

  beforeAll(async () => {
    config = testConfig(suiteEnv(temporal.address, { QUOTA_TASKS_IN_FLIGHT: '3', QUOTA_TASKS_PER_MINUTE: '5' }));
    pipeline = await startPipeline(config, temporal);
    a = pipeline.api;
    const id = (await upload(a.app, ALICE, 'later', GOOD).expect(202)).body.validation_id;
    expect((await waitForStatus(a.app, ALICE, id)).status).toBe('VALIDATED');
  }, 180000);

  afterAll(async () => {
    await pipeline?.stop();
  });

  // Scheduled an hour ahead: unfinished until cancelled (no task worker needed).
  const create = (app: TestApi['app']) =>
    request(app)
      .post('/tasks/')
      .set('Authorization', `Bearer ${ALICE}`)
      .send({ title: 'later', payload: {}, scheduled_at: new Date(Date.now() + 3600_000).toISOString() });
  /** Waits until visibility shows `n` of alice's tasks, then says how many it shows (a refused one would make n + 1). */
  const tasksSeen = async (n: number) => {
    await waitForVisible(temporal.env.client, `WorkflowType = '${TASK_WORKFLOW}' AND Owner = 'alice'`, { min: n });
    await new Promise((r) => setTimeout(r, 500));
    return (await waitForVisible(temporal.env.client, `WorkflowType = '${TASK_WORKFLOW}' AND Owner = 'alice'`, { min: 0, timeoutMs: 0 }))
      .length;
  };

  test('unfinished tasks and tasks per minute: 429, no workflow started; a restarted API still counts them', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await create(a.app).expect(201)).body.task_id);
    const res = await create(a.app);
    expectRefused(res, 'tasks_in_flight', 3);

    // The tasks' rows (not memory) are what counts: a fresh API on the same database agrees at once.
    const restarted = await buildApi(
      config,
      temporal.env.client,
      (storage) => new TemporalTaskService({ client: temporal.env.client, config, log: silentLogger, records: storage.tasks }),
    );
    expectRefused(await create(restarted.app), 'tasks_in_flight', 3);
    expect(await tasksSeen(3)).toBe(3);

    // Cancelling one frees a place (once visibility shows it closed).
    await request(a.app).delete(`/tasks/${ids[0]}`).set('Authorization', `Bearer ${ALICE}`).expect(202);
    await waitForVisible(temporal.env.client, `WorkflowType = '${TASK_WORKFLOW}' AND Owner = 'alice' AND ExecutionStatus != 'Running'`, {
      min: 1,
    });
    await create(a.app).expect(201);
    // 4 created in this minute, 5 allowed: cancel two more and the 6th creation hits the rate limit.
    for (const id of ids.slice(1)) await request(a.app).delete(`/tasks/${id}`).set('Authorization', `Bearer ${ALICE}`).expect(202);
    await waitForVisible(temporal.env.client, `WorkflowType = '${TASK_WORKFLOW}' AND Owner = 'alice' AND ExecutionStatus != 'Running'`, {
      min: 3,
    });
    await create(a.app).expect(201);
    const limited = await create(a.app);
    expectRefused(limited, 'tasks_per_minute', 5);
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(await tasksSeen(5)).toBe(5);
    await restarted.storage.close();
  }, 120000);

  test('a task workflow ended from outside (terminated) frees its place once the quota is reached', async () => {
    // A second API on the same database with a lower limit: what counts is the rows, whoever wrote them.
    const c = testConfig(suiteEnv(temporal.address, { DATABASE_URL: config.database.url, QUOTA_TASKS_IN_FLIGHT: '2' }));
    const b = await buildApi(
      c,
      temporal.env.client,
      (storage) => new TemporalTaskService({ client: temporal.env.client, config: c, log: silentLogger, records: storage.tasks }),
    );
    const id = (await upload(a.app, BOB, 'later', GOOD).expect(202)).body.validation_id;
    expect((await waitForStatus(a.app, BOB, id)).status).toBe('VALIDATED');
    const createBob = () =>
      request(b.app)
        .post('/tasks/')
        .set('Authorization', `Bearer ${BOB}`)
        .send({ title: 'later', payload: {}, scheduled_at: new Date(Date.now() + 3600_000).toISOString() });
    const first = (await createBob().expect(201)).body.task_id as string;
    await createBob().expect(201);
    expectRefused(await createBob(), 'tasks_in_flight', 2);
    await temporal.env.client.workflow.getHandle(`task-${first}`).terminate('an operator ended it');
    // Its row is still unfinished (the workflow never got to say so); at the limit, admission asks Temporal.
    await new Promise((r) => setTimeout(r, 5500));
    await createBob().expect(201);
    const { rows } = await b.storage.db.pool.query('SELECT status FROM tasks WHERE task_id = $1', [first]);
    expect(rows[0].status).toBe('ENDED');
    await b.storage.close();
  }, 60000);
});
