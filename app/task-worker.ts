/**
 * A task worker: two Temporal workers (the high and the low task queue) sharing one set of
 * sandbox slots, high first. Start as many processes as you like; they share the queues.
 */
import type { Client } from '@temporalio/client';
import { bundleWorkflowCode, Worker, type NativeConnection, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createTaskActivities } from '../activities/task';
import { taskStartedSignal } from '../domain/task';
import type { Config } from '../src/config';
import type { Logger } from '../src/logger';
import { PriorityGate } from '../activities/priority-gate';
import { quietBundlerLogger } from './validation-worker';
import type { Sandbox } from '../sandbox';

export interface TaskWorkerDeps {
  config: Config;
  sandbox: Sandbox;
  connection: NativeConnection;
  client: Client;
  log: Logger;
  loadVersion(owner: string, title: string, sha256: string): Promise<string>;
  /** Bundled once and shared when a process (or a test) starts several workers. */
  workflowBundle?: WorkflowBundleWithSourceMap;
}

export interface RunningTaskWorkers {
  /** Resolves when both workers have stopped. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

export function bundleTaskWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath: require.resolve('../workflows/task'), logger: quietBundlerLogger });
}

export async function startTaskWorkers(deps: TaskWorkerDeps): Promise<RunningTaskWorkers> {
  const { config, log } = deps;
  const slots = config.taskWorkerSlots;
  const gate = new PriorityGate(slots);
  const activities = createTaskActivities({
    sandbox: deps.sandbox,
    limits: config.taskLimits,
    gate,
    loadVersion: deps.loadVersion,
    notifyStarted: async (workflowId, attempt, startedAt) => {
      await deps.client.workflow.getHandle(workflowId).signal(taskStartedSignal, { attempt, startedAt });
    },
    log: log.child({ component: 'task-worker' }),
  });
  const workflowBundle = deps.workflowBundle ?? (await bundleTaskWorkflows());
  const make = (taskQueue: string, activitySlots: number) =>
    Worker.create({
      connection: deps.connection,
      namespace: config.temporal.namespace,
      taskQueue,
      workflowBundle,
      activities,
      maxConcurrentActivityTaskExecutions: activitySlots,
      // Cancellation reaches an activity only through heartbeats: keep them flowing promptly.
      maxHeartbeatThrottleInterval: '1 second',
    });
  // The high worker fetches one task more than there are slots, so a high task is always
  // already waiting at the gate when a slot frees.
  const high = await make(config.taskQueueHigh, slots + 1);
  const low = await make(config.taskQueueLow, slots);
  log.info('task workers polling', { high: config.taskQueueHigh, low: config.taskQueueLow, slots });
  const done = Promise.all([high.run(), low.run()]).then(() => undefined);
  return {
    done,
    async shutdown() {
      // The SDK may already have begun shutting down on SIGINT/SIGTERM itself.
      for (const w of [high, low]) if (w.getState() === 'RUNNING') w.shutdown();
      await done;
    },
  };
}
