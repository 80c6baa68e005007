/**
 * Fairness by the engine: while owner alice floods the validation queue and the task queue, owner
 * bob's single validation and single task are served in turn with hers (Temporal's fairness key =
 * owner), not after her whole backlog — also when her tasks are `high` and his `low` (her `high` tasks
 * beyond QUOTA_HIGH_TASKS_IN_FLIGHT are queued as `low`). One validation slot and one task slot make the
 * order plain.
 * The latency numbers (idle vs under a flood) are bench/fairness.ts's job; this judges order only.
 */
import request from 'supertest';
import type { Config } from '../src/config';
import type { TaskState } from '../domain/task';
import type { ValidationStatus } from '../domain/validation';
import { testConfig } from './helpers/sandbox';
import { startPipeline, type Pipeline } from './helpers/pipeline';
import { startTemporal, type StartedTemporal } from './helpers/temporal';
import { ALICE, BOB, suiteEnv, upload, waitForStatus, type TestApi } from './helpers/validation';

const FLOOD = 8;
const HIGH_BUDGET = 2;
let temporal: StartedTemporal;
let config: Config;
let api: TestApi;
let pipeline: Pipeline | undefined;

const napper = (i: number) =>
  `import asyncio\n\n\nasync def handler(payload):\n    await asyncio.sleep(0.3)\n    return {"n": ${i}, "echo": payload}\n`;

beforeAll(async () => {
  temporal = await startTemporal();
  config = testConfig(
    suiteEnv(temporal.address, {
      VALIDATION_WORKER_CONCURRENCY: '1',
      TASK_WORKER_SLOTS: '1',
      SANDBOX_POOL_SIZE: '1',
      TASK_PAYLOAD_TIMEOUT_MS: '4000',
      QUOTA_HIGH_TASKS_IN_FLIGHT: String(HIGH_BUDGET),
    }),
  );
  pipeline = await startPipeline(config, temporal);
  ({ api } = pipeline);
}, 240000);

afterAll(async () => {
  await pipeline?.stop();
  await temporal?.stop();
});

/** How many of `flood` happened strictly after `mine`. */
const after = (mine: string, flood: string[]) => flood.filter((t) => Date.parse(t) > Date.parse(mine)).length;

test("bob's validation is served in turn with alice's flood, not after it", async () => {
  const ids: string[] = [];
  for (let i = 0; i < FLOOD; i++) ids.push((await upload(api.app, ALICE, `flood_${i}`, napper(i)).expect(202)).body.validation_id);
  const bobId = (await upload(api.app, BOB, 'bobs_file', napper(99)).expect(202)).body.validation_id as string;

  const bob = await waitForStatus(api.app, BOB, bobId, undefined, 180000);
  const flood: ValidationStatus[] = [];
  for (const id of ids) flood.push(await waitForStatus(api.app, ALICE, id, undefined, 180000));
  expect([bob, ...flood].every((s) => s.status === 'VALIDATED')).toBe(true);
  // First come first served would finish bob last (after all FLOOD of hers); taking turns finishes
  // him among the first few, with most of her backlog still to go.
  expect(
    after(
      bob.finished_at!,
      flood.map((s) => s.finished_at!),
    ),
  ).toBeGreaterThanOrEqual(FLOOD / 2);
}, 240000);

const waitTask = async (token: string, id: string): Promise<TaskState> => {
  const until = Date.now() + 120000;
  for (;;) {
    const res = await request(api.app).get(`/tasks/${id}`).set('Authorization', `Bearer ${token}`).expect(200);
    if (['COMPLETED', 'FAILED', 'CANCELLED'].includes(res.body.status)) return res.body as TaskState;
    if (Date.now() > until) throw new Error(`task ${id} still ${res.body.status}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

/**
 * Waits for bob's task and every one of alice's; each must complete. Bob's state, and how many of hers
 * started after his.
 */
async function bobAmongHers(bobTask: string, hers: string[]): Promise<{ bob: TaskState; startedAfterBob: number }> {
  const bob = await waitTask(BOB, bobTask);
  const theirs: TaskState[] = [];
  for (const id of hers) theirs.push(await waitTask(ALICE, id));
  expect(bob.status).toBe('COMPLETED');
  expect(theirs.every((t) => t.status === 'COMPLETED')).toBe(true);
  return {
    bob,
    startedAfterBob: after(
      bob.started_at!,
      theirs.map((t) => t.started_at!),
    ),
  };
}

test("bob's task starts in turn with alice's flood of tasks, not after it", async () => {
  // Both files are validated by the test above.
  const create = (token: string, title: string, payload: Record<string, unknown>) =>
    request(api.app).post('/tasks/').set('Authorization', `Bearer ${token}`).send({ title, payload }).expect(201);
  const flood: string[] = [];
  for (let i = 0; i < 2 * FLOOD; i++) flood.push((await create(ALICE, `flood_${i % FLOOD}`, { i })).body.task_id);
  const bobTask = (await create(BOB, 'bobs_file', { me: 'bob' })).body.task_id as string;

  const { bob, startedAfterBob } = await bobAmongHers(bobTask, flood);
  expect(bob).toMatchObject({ status: 'COMPLETED', result: { n: 99, echo: { me: 'bob' } } });
  expect(startedAfterBob).toBeGreaterThanOrEqual(FLOOD);
}, 240000);

test("bob's low task starts in turn with alice's flood of high tasks: beyond her budget they queue as low", async () => {
  const create = (token: string, title: string, payload: Record<string, unknown>, priority: 'high' | 'low') =>
    request(api.app).post('/tasks/').set('Authorization', `Bearer ${token}`).send({ title, payload, priority }).expect(201);
  const created = [];
  for (let i = 0; i < 2 * FLOOD; i++) created.push((await create(ALICE, `flood_${i % FLOOD}`, { i }, 'high')).body);
  const bobTask = (await create(BOB, 'bobs_file', { me: 'bob' }, 'low')).body.task_id as string;
  // The answer says what was admitted: high while fewer than her budget were unfinished (a finished one
  // frees its place), low with requested_priority for the rest — most of her flood.
  const high = created.filter((t) => t.priority === 'high');
  expect(high.length).toBeGreaterThanOrEqual(HIGH_BUDGET);
  expect(high.length).toBeLessThan(FLOOD);
  for (const t of created.filter((c) => c.priority === 'low')) expect(t.requested_priority).toBe('high');

  // Priority before fairness would start bob after all 2 × FLOOD of hers; with her high work bounded he
  // starts after her budget and a turn or two, with most of her flood still to go.
  const { startedAfterBob } = await bobAmongHers(
    bobTask,
    created.map((t) => t.task_id as string),
  );
  expect(startedAfterBob).toBeGreaterThanOrEqual(FLOOD);
}, 240000);
