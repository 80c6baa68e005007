/**
 * Chaos: uploads and tasks in flight while the validation worker, the task worker, the Temporal dev
 * server (SQLite file), PostgreSQL and the API are each SIGKILLed and restarted (test/helpers/chaos.ts).
 * Every upload and task must end in the right state, none lost, none wrong, none duplicated, no 500,
 * no record left unfinished and no sandbox container of any of those processes left behind. Kept small (a few
 * dozen items); bench/chaos.ts runs the same with more.
 */
import { runChaos } from './helpers/chaos';

test('SIGKILL and restart of each process, PostgreSQL included: 0 lost, 0 wrong, 0 duplicated, no 500, no container left', async () => {
  const notes: string[] = [];
  const report = await runChaos({ goodFiles: 4, badFiles: 2, tasks: 16, note: (l) => notes.push(l) });
  if (process.env.TASKFLOW_TEST_LOGS) process.stdout.write(`${JSON.stringify({ report, notes }, null, 1)}\n`);
  expect(report.problems).toEqual([]);
  expect(report.kills.map((k) => k.target).sort()).toEqual(['api', 'postgres', 'task-worker', 'temporal', 'validation-worker']);
  for (const k of report.kills) expect({ target: k.target, busy: k.inFlight > 0 }).toEqual({ target: k.target, busy: true });
  expect({ lost: report.uploads.lost, wrong: report.uploads.wrong, unfinished: report.uploads.unfinishedRecords }).toEqual({
    lost: 0,
    wrong: 0,
    unfinished: 0,
  });
  expect({ lost: report.tasks.lost, wrong: report.tasks.wrong, duplicated: report.tasks.duplicated }).toEqual({
    lost: 0,
    wrong: 0,
    duplicated: 0,
  });
  expect(report.leftoverContainers).toBe(0);
  // The run really had work in flight at every kill, and the outage was seen by the client.
  const u = report.uploads;
  expect(u.validated + u.rejected).toBe(u.accepted + u.keptDuringOutage);
  expect(u.accepted + u.keptDuringOutage + u.unknownOutcome).toBe(11);
  // Temporal down (or slower than TEMPORAL_CALL_TIMEOUT_MS under the load): kept, validated later.
  expect(u.keptDuringOutage).toBeGreaterThanOrEqual(1);
  expect(u.resentAfterRefusal).toBeGreaterThanOrEqual(1); // PostgreSQL down: 503, nothing kept, sent again
  expect(report.tasks.completed).toBe(report.tasks.created);
  expect(report.tasks.created + report.tasks.unknownOutcome).toBe(18);
}, 900000);
