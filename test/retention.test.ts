/**
 * Retention on real rows made by the real pipeline (Temporal dev server, runsc, PostgreSQL): versions
 * beyond the kept count and past their lifetime go, but never the current one nor one an unfinished
 * task is pinned to; expired records and quarantined bytes go; file bytes nothing refers to go, those of
 * an upload still validating stay; one sweep at a time across hosts. The sweep is called with a clock
 * moved ahead; one test runs it through the Temporal schedule, as production does.
 */
import request from 'supertest';
import type { Config } from '../src/config';
import { silentLogger } from '../src/logger';
import { pinnedVersions } from '../src/retention/pins';
import { GRACE_MS, sweep, SWEEP_LOCK_KEY } from '../src/retention/sweep';
import { sha256Hex } from '../src/storage';
import { ensureRetentionSchedule } from '../app/temporal';
import { RETENTION_WORKFLOW, retentionScheduleId } from '../domain/retention';
import { TASK_WORKFLOW } from '../domain/task';
import { testConfig } from './helpers/sandbox';
import { startPipeline, type Pipeline } from './helpers/pipeline';
import { startTemporal, waitForVisible, type StartedTemporal } from './helpers/temporal';
import { ALICE, buildApi, quarantined, suiteEnv, upload, waitForStatus, type TestApi } from './helpers/validation';

const DAY = 86_400_000;
let temporal: StartedTemporal;
let config: Config;
let api: TestApi;
let pipeline: Pipeline | undefined;

beforeAll(async () => {
  temporal = await startTemporal();
  config = testConfig(suiteEnv(temporal.address, { QUOTA_KEPT_VERSIONS: '2', RETENTION_SWEEP_INTERVAL_MINUTES: '600' }));
  pipeline = await startPipeline(config, temporal);
  ({ api } = pipeline);
}, 240000);

afterAll(async () => {
  await pipeline?.stop();
  await temporal?.stop();
});

const version = (v: number) => `def handler(payload):\n    return {"version": ${v}}\n`;

async function validated(name: string, source: string): Promise<{ id: string; sha: string }> {
  const res = await upload(api.app, ALICE, name, source).expect(202);
  const s = await waitForStatus(api.app, ALICE, res.body.validation_id);
  return { id: s.validation_id, sha: s.sha256 };
}

const kept = async (sha: string) =>
  ((await api.storage.db.pool.query("SELECT 1 FROM versions WHERE owner = 'alice' AND sha256 = $1", [sha])).rowCount ?? 0) > 0;
const blobKept = async (sha: string) =>
  ((await api.storage.db.pool.query('SELECT 1 FROM blobs WHERE sha256 = $1', [sha])).rowCount ?? 0) > 0;
/** File bytes no upload or version refers to (as a crash could leave), last touched `agoMs` ago. */
async function orphanBlob(text: string, agoMs = 0): Promise<string> {
  const bytes = Buffer.from(text);
  await api.storage.db.pool.query(`INSERT INTO blobs (sha256, bytes, touched_at) VALUES ($1, $2, now() - make_interval(secs => $3))`, [
    sha256Hex(bytes),
    bytes,
    agoMs / 1000,
  ]);
  return sha256Hex(bytes);
}
const pins = async () => pinnedVersions(temporal.env.client);
const later = (ms: number) => ({ retention: config.retention, keptVersions: 2, now: Date.now() + ms });

test('versions: beyond the kept count they go, but not the current one, nor one a task is pinned to', async () => {
  const v1 = await validated('calc', version(1));
  // A task pinned to v1, scheduled an hour ahead: unfinished all through this test.
  const task = await request(api.app)
    .post('/tasks/')
    .set('Authorization', `Bearer ${ALICE}`)
    .send({ title: 'calc', payload: {}, scheduled_at: new Date(Date.now() + 3600_000).toISOString() })
    .expect(201);
  const v2 = await validated('calc', version(2));
  const v3 = await validated('calc', version(3));
  await waitForVisible(temporal.env.client, `WorkflowType = '${TASK_WORKFLOW}' AND ExecutionStatus = 'Running'`);
  expect(await pins()).toEqual(new Set([`alice/${v1.sha}`]));

  // Unknown pins: no version is touched, whatever its age.
  expect((await sweep(api.storage, { ...later(365 * DAY), pinned: undefined })).versionsSkipped).toBeDefined();
  for (const v of [v1, v2, v3]) expect(await kept(v.sha)).toBe(true);

  const v4 = await validated('calc', version(4));
  // Within the grace period after a version was written or last used, nothing goes.
  expect((await sweep(api.storage, { ...later(0), pinned: await pins() })).versions).toBe(0);
  const report = await sweep(api.storage, { ...later(GRACE_MS + 1000), pinned: await pins() });
  expect(report.versions).toBe(1);
  expect(await kept(v2.sha)).toBe(false); // third newest, not pinned
  expect(await kept(v1.sha)).toBe(true); // oldest, but pinned
  expect((await kept(v3.sha)) && (await kept(v4.sha))).toBe(true); // the two kept, v4 current

  // Once the task is gone, so is its version's protection.
  await request(api.app).delete(`/tasks/${task.body.task_id}`).set('Authorization', `Bearer ${ALICE}`).expect(202);
  await waitForVisible(temporal.env.client, `WorkflowType = '${TASK_WORKFLOW}' AND ExecutionStatus != 'Running'`);
  expect(await pins()).toEqual(new Set());
  await sweep(api.storage, { ...later(GRACE_MS + 1000), pinned: await pins() });
  expect(await kept(v1.sha)).toBe(false);

  // Past the version lifetime only the current one is left; the name still runs tasks.
  await sweep(api.storage, { ...later(31 * DAY), pinned: await pins() });
  expect(await kept(v3.sha)).toBe(false);
  expect(await kept(v4.sha)).toBe(true);
  await request(api.app).post('/tasks/').set('Authorization', `Bearer ${ALICE}`).send({ title: 'calc', payload: {} }).expect(201);
}, 180000);

test('records and quarantine expire; a name’s last upload stays, a rejected name goes with it', async () => {
  const keeper = await validated('keeper', version(10));
  const old = await validated('replaced', version(11));
  const current = await validated('replaced', version(12));
  const bad = (await upload(api.app, ALICE, 'broken', 'def handler(:\n').expect(202)).body.validation_id as string;
  expect((await waitForStatus(api.app, ALICE, bad)).status).toBe('REJECTED');
  expect((await quarantined(api.storage, bad)).source).toBe('def handler(:\n');

  const status = (id: string) => request(api.app).get(`/tasks/validation_status/${id}`).set('Authorization', `Bearer ${ALICE}`);
  // Past the quarantine lifetime (14 days), before the record lifetime (30).
  await sweep(api.storage, { ...later(15 * DAY), pinned: await pins() });
  expect((await quarantined(api.storage, bad)).source).toBeUndefined();
  expect((await status(bad)).body.status).toBe('REJECTED');

  await sweep(api.storage, { ...later(31 * DAY), pinned: await pins() });
  expect((await status(old.id)).status).toBe(404); // superseded and expired
  expect((await status(bad)).status).toBe(404); // rejected, expired: the name is free again
  expect(await api.storage.records.pointer('alice', 'broken')).toBeUndefined();
  expect((await status(current.id)).body.status).toBe('VALIDATED'); // the name's last upload
  expect((await status(keeper.id)).body.status).toBe('VALIDATED');
  expect(await api.storage.records.get(old.id)).toBeUndefined();
}, 180000);

test('file bytes: nothing refers to them, they go after the grace period; an upload still validating keeps its own', async () => {
  const orphan = await orphanBlob('def handler(p):\n    return "orphan"\n');
  // An upload that stays in flight: the same database, a validation queue no worker polls.
  const stuckConfig = { ...config, validationQueue: `${config.validationQueue}-unpolled` };
  const stuck = await buildApi(stuckConfig, temporal.env.client);
  const inFlight = (await upload(stuck.app, ALICE, 'waiting', version(20)).expect(202)).body as { validation_id: string; sha256: string };

  await sweep(api.storage, { ...later(0), pinned: await pins() });
  expect(await blobKept(orphan)).toBe(true); // could be an upload in progress
  const report = await sweep(api.storage, { ...later(400 * DAY), pinned: await pins() });
  expect(await blobKept(orphan)).toBe(false);
  expect(report.blobs).toBeGreaterThanOrEqual(1);
  expect(await blobKept(inFlight.sha256)).toBe(true);
  expect((await api.storage.records.get(inFlight.validation_id))?.final).toBeUndefined();
  await stuck.storage.close();
}, 120000);

test('dependency locks: one no validation or task names goes, a named one stays', async () => {
  const lock = async (text: string) => {
    const sha = sha256Hex(Buffer.from(text));
    await api.storage.db.pool.query('INSERT INTO dependency_locks (sha256, lock, packages, unpacked_bytes) VALUES ($1, $2, 1, 10)', [
      sha,
      text,
    ]);
    return sha;
  };
  const lockKept = async (sha: string) =>
    ((await api.storage.db.pool.query('SELECT 1 FROM dependency_locks WHERE sha256 = $1', [sha])).rowCount ?? 0) > 0;
  const orphan = await lock('orphan==1.0 --hash=sha256:00\n');
  const named = await lock('named==1.0 --hash=sha256:11\n');
  const v = await validated('locked', version(30));
  await api.storage.db.pool.query('UPDATE validations SET lock_sha256 = $2 WHERE validation_id = $1', [v.id, named]);
  const report = await sweep(api.storage, { ...later(0), pinned: await pins() });
  expect(report.locks).toBeGreaterThanOrEqual(1);
  expect(await lockKept(orphan)).toBe(false);
  expect(await lockKept(named)).toBe(true);
}, 120000);

test('the Temporal schedule runs the sweep on a validation worker', async () => {
  await ensureRetentionSchedule(temporal.env.client, config, silentLogger);
  await ensureRetentionSchedule(
    temporal.env.client,
    { ...config, retention: { ...config.retention, sweepIntervalMinutes: 720 } },
    silentLogger,
  );
  const handle = temporal.env.client.schedule.getHandle(retentionScheduleId(config.validationQueue));
  const described = await handle.describe();
  expect(described.spec.intervals?.[0]?.every).toBe(720 * 60_000); // updated in place, not duplicated
  expect(described.action).toMatchObject({ type: 'startWorkflow', workflowType: RETENTION_WORKFLOW, taskQueue: config.validationQueue });

  const orphan = await orphanBlob('x = 1\n', 3600_000);
  await handle.trigger();
  const [run] = await waitForVisible(temporal.env.client, `WorkflowType = '${RETENTION_WORKFLOW}'`);
  const result = await temporal.env.client.workflow.getHandle(run.workflowId, run.runId).result();
  expect(result).toMatchObject({ blobs: 1 });
  expect(await blobKept(orphan)).toBe(false);
  await handle.delete();
}, 120000);

test('one sweep at a time across hosts: while another holds the lock, a sweep skips; then it runs', async () => {
  const orphan = await orphanBlob('y = 2\n', 3600_000);
  const other = await api.storage.db.pool.connect(); // another host's sweep, mid-way
  try {
    await other.query('BEGIN');
    await other.query('SELECT pg_advisory_xact_lock($1)', [SWEEP_LOCK_KEY]);
    const skipped = await sweep(api.storage, { ...later(0), pinned: await pins() });
    expect(skipped).toMatchObject({ skipped: expect.stringContaining('another retention sweep'), blobs: 0 });
    expect(await blobKept(orphan)).toBe(true);
  } finally {
    await other.query('ROLLBACK');
    other.release();
  }
  expect(await sweep(api.storage, { ...later(0), pinned: await pins() })).toMatchObject({ blobs: 1 });
  expect(await blobKept(orphan)).toBe(false);
}, 60000);
