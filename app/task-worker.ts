/**
 * A task worker: one Temporal worker on the task queue with TASK_WORKER_SLOTS activity slots (one
 * sandbox run per slot). It asks for a task only when a slot is free, and the server hands it the
 * queued task that comes first by priority key, then by owner fairness (domain/priority.ts).
 * Start as many processes as you like; they share the queue.
 */
import type { Client } from '@temporalio/client';
import { bundleWorkflowCode, Worker, type NativeConnection, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createTaskActivities } from '../activities/task';
import { taskStartedSignal } from '../domain/task';
import type { Config } from '../src/config';
import type { Logger } from '../src/logger';
import type { Metrics } from '../src/metrics';
import { quietBundlerLogger } from './validation-worker';
import type { Sandbox } from '../sandbox';
import { LayerCache } from '../src/dependencies';

export interface TaskWorkerDeps {
  config: Config;
  sandbox: Sandbox;
  connection: NativeConnection;
  client: Client;
  log: Logger;
  loadVersion(owner: string, title: string, sha256: string): Promise<string>;
  /** A dependency lock's text by sha256 (the database): a layer this host lacks is rebuilt from it. */
  loadLock?(lockSha256: string): Promise<string | undefined>;
  /** Notes a task's end in its row (src/tasks/task-records.ts). */
  taskFinished(taskId: string, status: string, resultBytes: number): Promise<void>;
  /** Task runs are counted into it. */
  metrics?: Metrics;
  /** Bundled once and shared when a process (or a test) starts several workers. */
  workflowBundle?: WorkflowBundleWithSourceMap;
}

export interface RunningTaskWorkers {
  /** Resolves when the worker has stopped. */
  done: Promise<void>;
  /** Whether the worker is still running (for /readyz). */
  running(): boolean;
  shutdown(): Promise<void>;
}

export function bundleTaskWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath: require.resolve('../workflows/task'), logger: quietBundlerLogger });
}

export async function startTaskWorkers(deps: TaskWorkerDeps): Promise<RunningTaskWorkers> {
  const { config, log } = deps;
  // This host's layers: a task of a version with dependencies runs with its lock's layer, built here when missing.
  const layers = new LayerCache(config.dependencies, log);
  const activities = createTaskActivities({
    sandbox: deps.sandbox,
    limits: config.taskLimits,
    loadVersion: deps.loadVersion,
    ...(deps.loadLock
      ? {
          loadLayer: (sha: string, signal: AbortSignal) => layers.bySha256(sha, deps.loadLock!, signal),
        }
      : {}),
    taskFinished: deps.taskFinished,
    notifyStarted: async (workflowId, attempt, startedAt) => {
      await deps.client.workflow.getHandle(workflowId).signal(taskStartedSignal, { attempt, startedAt });
    },
    log: log.child({ component: 'task-worker' }),
    metrics: deps.metrics,
  });
  const worker = await Worker.create({
    connection: deps.connection,
    namespace: config.temporal.namespace,
    taskQueue: config.taskQueue,
    workflowBundle: deps.workflowBundle ?? (await bundleTaskWorkflows()),
    activities,
    maxConcurrentActivityTaskExecutions: config.taskWorkerSlots,
    // Cancellation reaches an activity only through heartbeats: keep them flowing promptly.
    maxHeartbeatThrottleInterval: '1 second',
  });
  log.info('task workers polling', { taskQueue: config.taskQueue, slots: config.taskWorkerSlots });
  const done = worker.run();
  return {
    done,
    running: () => worker.getState() === 'RUNNING',
    async shutdown() {
      // The SDK may already have begun shutting down on SIGINT/SIGTERM itself.
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await done;
    },
  };
}
