/**
 * The engine's floor, measured in the same run as a benchmark's own figures: a trivial workflow with one
 * and with four sequential no-op activities (plain activities, plain start, a worker in this process),
 * start to result, on a given dev server. Each benchmark compares its figures with the floor on the
 * server it used (TaskFlow's settings) and on a dev server with Temporal's defaults (the issue's ratio goals).
 *
 * Runs are back to back on one server at a time: the default server's ~50 ms per step is a rate limiter
 * (20 polls/s) that refills while the server idles, so interleaving servers would flatter it.
 *
 * Alone: bash scripts/bench.sh floor [--runs N]   (prints both servers' floors)
 */
import { randomUUID } from 'node:crypto';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { quietBundlerLogger } from '../app/validation-worker';
import { startTemporal, type StartedTemporal } from '../test/helpers/temporal';
import { fmt, percentile } from './report';

export interface FloorActivities {
  floorNoop(): Promise<void>;
}

export interface Floor {
  /** p50 ms, start → result. */
  oneActivity: number;
  fourActivities: number;
}

const FLOOR_QUEUE = 'bench-floor';

/** p50 of `runs` sequential executions of each floor workflow on `temporal` (after a short warm-up). */
export async function measureFloor(temporal: StartedTemporal, runs: number): Promise<Floor> {
  const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./floor-workflows'), logger: quietBundlerLogger });
  const activities: FloorActivities = { floorNoop: async () => undefined };
  const worker = await Worker.create({
    connection: temporal.env.nativeConnection,
    taskQueue: FLOOR_QUEUE,
    workflowBundle: bundle,
    activities,
  });
  const running = worker.run();
  try {
    const p50 = async (workflow: string) => {
      const ms: number[] = [];
      for (let i = 0; i < runs + 3; i++) {
        const t = performance.now();
        await temporal.env.client.workflow.execute(workflow, { taskQueue: FLOOR_QUEUE, workflowId: `floor-${randomUUID()}` });
        if (i >= 3) ms.push(performance.now() - t);
      }
      return percentile(ms, 50);
    };
    return { oneActivity: await p50('floorOneActivity'), fourActivities: await p50('floorFourActivities') };
  } finally {
    worker.shutdown();
    await running;
  }
}

/** The floor on a dev server with Temporal's defaults (started and stopped here). */
export async function measureDefaultFloor(runs: number): Promise<Floor> {
  const temporal = await startTemporal({ tuned: false });
  try {
    return await measureFloor(temporal, runs);
  } finally {
    await temporal.stop();
  }
}

export const floorRows = (tuned: Floor, untuned: Floor): string[] => [
  '| engine floor | 1 activity p50 ms | 4 activities p50 ms |',
  '|---|---|---|',
  `| dev server with TaskFlow's settings (scripts/temporal-dev-server.json) | ${fmt(tuned.oneActivity)} | ${fmt(tuned.fourActivities)} |`,
  `| dev server with Temporal's defaults | ${fmt(untuned.oneActivity)} | ${fmt(untuned.fourActivities)} |`,
];

/** "`value` ms is 0.42× `floor`" for a ratio row. */
export const ratio = (value: number, floor: number): string => `${(value / floor).toFixed(2)}×`;

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

async function main(): Promise<void> {
  const runs = arg('--runs', 30);
  const temporal = await startTemporal();
  let tuned: Floor;
  try {
    tuned = await measureFloor(temporal, runs);
  } finally {
    await temporal.stop();
  }
  const untuned = await measureDefaultFloor(runs);
  process.stdout.write(floorRows(tuned, untuned).join('\n') + '\n');
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}
