/**
 * The long poll (`?wait=SECONDS&known_status=STATUS`) on validations and tasks, over HTTP against a real
 * Temporal dev server, real workers and real sandboxes: it answers when the status changes, when it is
 * final, and (unchanged) when the wait runs out; many waiters on one workflow share one watch; reads never
 * grow a workflow's history; deadlines hold under many waiters; a workflow ended from outside is reconciled.
 */
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { temporal as proto } from '@temporalio/proto';
import request from 'supertest';
import type { Config } from '../src/config';
import { bundleTaskWorkflows } from '../app/task-worker';
import { taskWorkflowId, type TaskState } from '../domain/task';
import { validationWorkflowId, type ValidationStatus } from '../domain/validation';
import { testConfig } from './helpers/sandbox';
import { startPipeline, type Pipeline } from './helpers/pipeline';
import { startTemporal, type StartedTemporal } from './helpers/temporal';
import { ownerUsage } from '../src/storage/usage';
import { ALICE, BOB, suiteEnv, upload, waitForStatus, type TestApi } from './helpers/validation';

let temporal: StartedTemporal;
let config: Config;
let api: TestApi;
let bundle: WorkflowBundleWithSourceMap;
let pipeline: Pipeline | undefined;
const LONG_POLLS = 45;

// The validation run takes ~3 s (its test payload sleeps), so the suite can catch it in SANDBOX_RUN.
const SLOW_TO_VALIDATE = `import time


def handler(payload):
    if payload.get("validating"):
        time.sleep(3)
    if payload.get("sleep"):
        time.sleep(payload["sleep"])
    return {"echo": payload}
`;

beforeAll(async () => {
  temporal = await startTemporal();
  config = testConfig(
    suiteEnv(temporal.address, {
      TASK_WORKER_SLOTS: '1',
      TASK_PAYLOAD_TIMEOUT_MS: '6000',
      SANDBOX_PAYLOAD_TIMEOUT_MS: '6000',
      QUOTA_LONG_POLLS: String(LONG_POLLS),
    }),
  );
  bundle = await bundleTaskWorkflows();
  pipeline = await startPipeline(config, temporal, { workflowBundle: bundle });
  ({ api } = pipeline);
}, 240000);

afterAll(async () => {
  await pipeline?.stop();
  await temporal?.stop();
});

function validationStatus(id: string, query: Record<string, string | number | undefined> = {}, token = ALICE) {
  return request(api.app).get(`/tasks/validation_status/${id}`).query(query).set('Authorization', `Bearer ${token}`);
}

function task(id: string, query: Record<string, string | number | undefined> = {}) {
  return request(api.app).get(`/tasks/${id}`).query(query).set('Authorization', `Bearer ${ALICE}`);
}

/** The workflow's history: its events, its encoded size, and how many workflow Updates it took. */
async function historyOf(workflowId: string): Promise<{ events: number; bytes: number; updates: number }> {
  const history = await temporal.env.client.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  return {
    events: events.length,
    bytes: proto.api.history.v1.History.encode(history).finish().length,
    updates: events.filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes).length,
  };
}

const updatesTaken = async (workflowId: string): Promise<number> => (await historyOf(workflowId)).updates;

/** `n` GETs with `concurrency` in flight at a time; each answer's HTTP status. */
async function polls(n: number, concurrency: number, get: () => Promise<{ status: number }>): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i += concurrency) {
    const batch = await Promise.all(Array.from({ length: Math.min(concurrency, n - i) }, get));
    statuses.push(...batch.map((r) => r.status));
  }
  return statuses;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t = Date.now();
  const value = await fn();
  return { value, ms: Date.now() - t };
}

describe('validation status long poll', () => {
  let id: string;
  let final: ValidationStatus;

  test('answers on each change, unchanged when the wait runs out, and with the final status', async () => {
    const res = await upload(api.app, ALICE, 'slow_to_validate', SLOW_TO_VALIDATE, [{ validating: true }]);
    expect(res.status).toBe(202);
    id = res.body.validation_id;

    // PENDING → something else: the answer names the new status.
    const first = await validationStatus(id, { wait: 30, known_status: 'PENDING' });
    expect(first.status).toBe(200);
    expect(first.body.status).not.toBe('PENDING');

    const running = await waitForStatus(api.app, ALICE, id, (s) => s.status === 'SANDBOX_RUN' || s.status === 'VALIDATED');
    expect(running.status).toBe('SANDBOX_RUN'); // the run sleeps 3 s: we are inside it
    // The bound: the run goes on for seconds, the answer comes after the half-second wait, unchanged.
    const bounded = await timed(() => validationStatus(id, { wait: 0.5, known_status: 'SANDBOX_RUN' }));
    expect(bounded.value.status).toBe(200);
    expect(bounded.value.body.status).toBe('SANDBOX_RUN');
    expect(bounded.ms).toBeGreaterThanOrEqual(450);

    // Many waiters at once (more than the 10 updates a workflow takes in flight) all get the final status.
    const waiters = await Promise.all(Array.from({ length: 15 }, () => validationStatus(id, { wait: 30, known_status: 'SANDBOX_RUN' })));
    for (const w of waiters) expect([w.status, w.body.status]).toEqual([200, 'VALIDATED']);
    final = waiters[0].body;
    expect(final).toMatchObject({ promoted: true, finished_at: expect.any(String) });
    // The final answer is consistent with the rest of the API at once: the file can be used.
    const created = await request(api.app)
      .post('/tasks/')
      .set('Authorization', `Bearer ${ALICE}`)
      .send({ title: 'slow_to_validate', payload: {} });
    expect(created.status).toBe(201);
  });

  test('a final status, or a known_status that is no longer current, answers at once', async () => {
    const a = await timed(() => validationStatus(id, { wait: 30 }));
    expect(a.value.body).toEqual(final);
    expect(a.ms).toBeLessThan(20000); // did not sit out the 30 s wait
    const b = await timed(() => validationStatus(id, { wait: 30, known_status: 'PENDING' }));
    expect(b.value.body.status).toBe('VALIDATED');
    expect(b.ms).toBeLessThan(20000);
  });

  test('until=final answers only with the final status, costs the workflow no update, and is bounded by wait', async () => {
    const res = await upload(api.app, ALICE, 'slow_to_validate', SLOW_TO_VALIDATE, [{ validating: true }]);
    const newId = res.body.validation_id as string;
    // The run sleeps 3 s: a half-second wait ends before the final status, with the current one.
    const bounded = await timed(() => validationStatus(newId, { wait: 0.5, until: 'final' }));
    expect(bounded.value.status).toBe(200);
    expect(['PENDING', 'STATIC_CHECK', 'SANDBOX_RUN']).toContain(bounded.value.body.status);
    expect(bounded.ms).toBeGreaterThanOrEqual(450);

    const waiters = await Promise.all(Array.from({ length: 3 }, () => validationStatus(newId, { wait: 30, until: 'final' })));
    for (const w of waiters) expect([w.status, w.body.status]).toEqual([200, 'VALIDATED']);
    expect(waiters[0].body).toEqual((await validationStatus(newId)).body);
    expect(await updatesTaken(validationWorkflowId(newId))).toBe(0);
  });

  test('bad wait or known_status values are 400 invalid_query; other owners still get 404', async () => {
    for (const q of [
      { wait: 5, until: 'soon' },
      { wait: -1 },
      { wait: 61 },
      { wait: 'soon' },
      { wait: 5, known_status: 'NOPE' },
      { wait: 5, known_status: 'QUEUED' },
    ]) {
      const res = await validationStatus(id, q);
      expect([res.status, res.body.error?.code]).toEqual([400, 'invalid_query']);
    }
    expect((await validationStatus(id, { wait: 1 }, BOB)).status).toBe(404);
  });
});

describe('task long poll', () => {
  test('QUEUED → RUNNING → COMPLETED, each answered by the workflow; the final answer carries the result', async () => {
    const created = await request(api.app)
      .post('/tasks/')
      .set('Authorization', `Bearer ${ALICE}`)
      .send({ title: 'slow_to_validate', payload: { sleep: 2 } });
    expect(created.status).toBe(201);
    const id = created.body.task_id as string;
    const seen: string[] = [];
    let known = created.body.status as string;
    let last: TaskState | undefined;
    for (let i = 0; i < 10 && !['COMPLETED', 'FAILED', 'CANCELLED'].includes(known); i++) {
      const res = await task(id, { wait: 30, known_status: known });
      expect(res.status).toBe(200);
      last = res.body as TaskState;
      // Every answer is a change (the waits are far longer than the task).
      expect(last.status).not.toBe(known);
      seen.push(last.status);
      known = last.status;
    }
    expect(seen[seen.length - 1]).toBe('COMPLETED');
    expect(last).toMatchObject({ status: 'COMPLETED', result: { echo: { sleep: 2 } }, attempts: 1 });
  });

  test('a scheduled task: the wait runs out unchanged; a cancel answers the waiter with CANCELLED', async () => {
    const created = await request(api.app)
      .post('/tasks/')
      .set('Authorization', `Bearer ${ALICE}`)
      .send({ title: 'slow_to_validate', payload: {}, scheduled_at: Math.floor(Date.now() / 1000) + 3600 });
    expect(created.body.status).toBe('SCHEDULED');
    const id = created.body.task_id as string;
    const bounded = await timed(() => task(id, { wait: 0.5 }));
    expect(bounded.value.body.status).toBe('SCHEDULED');
    expect(bounded.ms).toBeGreaterThanOrEqual(450);

    const waiting = task(id, { wait: 30, known_status: 'SCHEDULED' }).then((r) => r);
    await new Promise((r) => setTimeout(r, 500));
    expect((await request(api.app).delete(`/tasks/${id}`).set('Authorization', `Bearer ${ALICE}`)).status).toBe(202);
    const answer = await timed(() => waiting);
    expect(answer.value.body).toMatchObject({ status: 'CANCELLED', error: { type: 'Cancelled' } });
    expect(answer.ms).toBeLessThan(20000);
  });

  test('until=final skips RUNNING: the one answer is the final state with its result, and no update', async () => {
    const created = await request(api.app)
      .post('/tasks/')
      .set('Authorization', `Bearer ${ALICE}`)
      .send({ title: 'slow_to_validate', payload: { sleep: 2 } });
    const id = created.body.task_id as string;
    const bounded = await timed(() => task(id, { wait: 0.5, until: 'final' }));
    expect(['QUEUED', 'RUNNING']).toContain(bounded.value.body.status);
    expect(bounded.ms).toBeGreaterThanOrEqual(450);
    const res = await task(id, { wait: 30, until: 'final' });
    expect(res.body).toMatchObject({ status: 'COMPLETED', result: { echo: { sleep: 2 } }, attempts: 1 });
    expect(await updatesTaken(taskWorkflowId(id))).toBe(0);
  });

  test('bad values are 400 invalid_query', async () => {
    for (const q of [{ wait: 1, until: 'done' }, { wait: 100 }, { wait: 1, known_status: 'VALIDATED' }]) {
      const res = await task('00000000-0000-0000-0000-000000000000', q);
      expect([res.status, res.body.error?.code]).toEqual([400, 'invalid_query']);
    }
  });
});

describe('a status read never changes or endangers a workflow', () => {
  const scheduledTask = async (): Promise<string> => {
    const created = await request(api.app)
      .post('/tasks/')
      .set('Authorization', `Bearer ${ALICE}`)
      .send({ title: 'slow_to_validate', payload: {}, scheduled_at: Math.floor(Date.now() / 1000) + 3600 });
    expect(created.status).toBe(201);
    return created.body.task_id as string;
  };
  const cancel = (id: string) => request(api.app).delete(`/tasks/${id}`).set('Authorization', `Bearer ${ALICE}`);

  test("hundreds of short polls leave a validation's history as long as an unpolled one's, and it finishes", async () => {
    const quiet = (await upload(api.app, ALICE, 'quiet', SLOW_TO_VALIDATE, [{ validating: true }])).body.validation_id as string;
    const polled = (await upload(api.app, ALICE, 'polled', SLOW_TO_VALIDATE, [{ validating: true }])).body.validation_id as string;
    // No known_status, a short wait: the pattern that used to start one workflow Update per request.
    let answered = 0;
    let status = 'PENDING';
    while (answered < 300 || !['VALIDATED', 'REJECTED'].includes(status)) {
      const batch = await Promise.all(Array.from({ length: 15 }, () => validationStatus(polled, { wait: 0.1 })));
      for (const r of batch) expect(r.status).toBe(200);
      answered += batch.length;
      status = batch[batch.length - 1].body.status;
    }
    expect(status).toBe('VALIDATED');
    expect((await waitForStatus(api.app, ALICE, quiet, (s) => s.status === 'VALIDATED' || s.status === 'REJECTED')).status).toBe(
      'VALIDATED',
    );
    const [a, b] = [await historyOf(validationWorkflowId(quiet)), await historyOf(validationWorkflowId(polled))];
    expect(b.updates).toBe(0);
    // The workflow's own steps only (a little slack for a workflow-task heartbeat on a busy machine).
    expect(b.events).toBeLessThanOrEqual(a.events + 6);
    expect(b.bytes).toBeLessThanOrEqual(a.bytes + 4096);
  });

  test("hundreds of short polls add nothing to a task's history", async () => {
    const id = await scheduledTask();
    // Once its timer is started the workflow has nothing to do for an hour: its history stays as it is.
    const timerStarted = async () => {
      const history = await temporal.env.client.workflow.getHandle(taskWorkflowId(id)).fetchHistory();
      return (history.events ?? []).some((e) => e.timerStartedEventAttributes);
    };
    while (!(await timerStarted())) await new Promise((r) => setTimeout(r, 50));
    const before = await historyOf(taskWorkflowId(id));
    const statuses = await polls(300, 15, () => task(id, { wait: 0.1 }));
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(await historyOf(taskWorkflowId(id))).toEqual(before);
    expect((await cancel(id)).status).toBe(202);
  });

  test('40 waiters on one unfinished task are each answered within their wait + 0.5 s', async () => {
    const id = await scheduledTask();
    const waited = await Promise.all(
      Array.from({ length: 40 }, (_, i) => timed(() => task(id, i % 2 ? { wait: 2 } : { wait: 2, known_status: 'SCHEDULED' }))),
    );
    for (const w of waited) {
      expect([w.value.status, w.value.body.status]).toEqual([200, 'SCHEDULED']);
      expect(w.ms).toBeGreaterThanOrEqual(1950);
      expect(w.ms).toBeLessThanOrEqual(2500);
    }
    expect((await cancel(id)).status).toBe(202);
  });

  test('an owner has at most QUOTA_LONG_POLLS waits open: 429 long_polls beyond, the places free again once the waits end', async () => {
    const id = await scheduledTask();
    const waits = await Promise.all(Array.from({ length: LONG_POLLS + 5 }, () => task(id, { wait: 3 })));
    const refused = waits.filter((w) => w.status === 429);
    expect(refused).toHaveLength(5);
    for (const r of refused) expect(r.body.error).toMatchObject({ code: 'quota_exceeded', limit: 'long_polls', max: LONG_POLLS });
    expect(waits.filter((w) => w.status === 200)).toHaveLength(LONG_POLLS);
    // Every wait has ended: the places are free again.
    expect((await task(id, { wait: 0.2 })).status).toBe(200);
    expect((await cancel(id)).status).toBe(202);
  });
});

describe('a validation whose workflow ends without a verdict', () => {
  test('is REJECTED with validation_aborted by the recovery pass: its quota place is free, the name takes a new upload', async () => {
    const id = (await upload(api.app, ALICE, 'terminated', SLOW_TO_VALIDATE, [{ validating: true }])).body.validation_id as string;
    expect((await waitForStatus(api.app, ALICE, id, (s) => s.status === 'SANDBOX_RUN' || s.status === 'VALIDATED')).status).toBe(
      'SANDBOX_RUN',
    );
    const inFlight = async () => (await ownerUsage(api.storage.db.pool, 'alice')).validationsInFlight;
    const before = await inFlight();
    // As Temporal does past the history limit, or an operator would.
    await temporal.env.client.workflow.getHandle(validationWorkflowId(id)).terminate('history size exceeds limit');
    expect(await api.validations.reconcileEnded()).toBe(1);

    const after = await validationStatus(id);
    expect(after.body).toMatchObject({ status: 'REJECTED', finished_at: expect.any(String) });
    expect(after.body.findings.map((f: { code: string }) => f.code)).toEqual(['validation_aborted']);
    expect(await inFlight()).toBe(before - 1);
    // Final: the name is no longer "still validating" (412 / 409), it is a rejected upload.
    const created = await request(api.app)
      .post('/tasks/')
      .set('Authorization', `Bearer ${ALICE}`)
      .send({ title: 'terminated', payload: {} });
    expect([created.status, created.body.error?.code]).toEqual([404, 'task_file_not_found']);
    const deleted = await request(api.app)
      .delete('/tasks/delete_file')
      .query({ file_name: 'terminated' })
      .set('Authorization', `Bearer ${ALICE}`);
    expect(deleted.status).toBe(404);

    const again = (await upload(api.app, ALICE, 'terminated', SLOW_TO_VALIDATE)).body.validation_id as string;
    expect((await waitForStatus(api.app, ALICE, again, (s) => s.status === 'VALIDATED' || s.status === 'REJECTED')).status).toBe(
      'VALIDATED',
    );
    expect(await api.validations.reconcileEnded()).toBe(0);
  });
});
