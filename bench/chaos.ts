/**
 * Chaos at a larger scale than test/chaos.test.ts: the same run (test/helpers/chaos.ts) — uploads
 * and tasks in flight while the validation worker, the task worker, the Temporal dev server (SQLite
 * file) and the API are each SIGKILLed and restarted — with more items, reporting what was lost,
 * wrong or duplicated (all must be 0), how long each process was down and how long the whole
 * workload took to settle.
 * Run: bash scripts/bench.sh chaos [--good N] [--bad N] [--tasks N]
 */
import { runChaos } from '../test/helpers/chaos';
import { writeSection } from './report';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

async function main(): Promise<void> {
  const good = arg('--good', 12);
  const bad = arg('--bad', 6);
  const tasks = arg('--tasks', 80);
  const r = await runChaos({ goodFiles: good, badFiles: bad, tasks, note: (l) => process.stderr.write(`chaos: ${l}\n`) });
  const u = r.uploads;
  const t = r.tasks;
  const body = [
    '## Chaos: every process SIGKILLed and restarted with work in flight',
    '',
    `${good} good and ${bad} bad files uploaded, ${tasks} tasks created (plus one upload and one task during the Temporal outage,`,
    'one upload during the API kill), while the validation worker, the task worker, the Temporal dev server (SQLite file) and',
    'the API are killed one after another (each process is `app/main.ts` with one role; restart includes ts-node start-up).',
    '',
    '| | count |',
    '|---|---|',
    `| uploads accepted (202) / kept during the Temporal outage (503) / cut off by the API kill | ${u.accepted} / ${u.keptDuringOutage} / ${u.unknownOutcome} |`,
    `| uploads VALIDATED / REJECTED (as expected for good / bad files) | ${u.validated} / ${u.rejected} |`,
    `| tasks created / sent again after a 503 or 412 / cut off by the API kill | ${t.created} / ${t.resentAfterRefusal} / ${t.unknownOutcome} |`,
    `| tasks COMPLETED with the right result / run more than once (retried after a kill) | ${t.completed} / ${t.retriedRuns} |`,
    `| **lost / wrong / duplicated** (uploads + tasks) | **${u.lost + t.lost} / ${u.wrong + t.wrong} / ${t.duplicated}** |`,
    `| upload records left unfinished / sandbox containers left behind | ${u.unfinishedRecords} / ${r.leftoverContainers} |`,
    '',
    '| killed | items in flight at the kill | down until serving again (ms) |',
    '|---|---|---|',
    ...r.kills.map((k) => `| ${k.target} | ${k.inFlight} | ${k.downMs} |`),
    '',
    `All uploads and tasks final ${(r.workMs / 1000).toFixed(0)} s after the first upload (including the four restarts).`,
    ...(r.problems.length ? ['', 'Problems:', ...r.problems.map((p) => `- ${p}`)] : []),
  ].join('\n');
  process.stdout.write(body + '\n');
  writeSection('chaos', `bash scripts/bench.sh chaos --good ${good} --bad ${bad} --tasks ${tasks}`, body);
  if (r.problems.length || r.leftoverContainers) process.exit(1);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
