/**
 * The validation worker: polls TASK_VALIDATION_QUEUE_NAME with `validateTaskFile` and its activities,
 * and the retention sweep (it has the storage the sweep works on).
 */
import { Client } from '@temporalio/client';
import { bundleWorkflowCode, Worker, type NativeConnection, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createRetentionActivities } from '../activities/retention';
import { createValidationActivities } from '../activities/validation';
import type { Sandbox } from '../sandbox';
import type { Config } from '../src/config';
import type { Logger } from '../src/logger';
import type { Metrics } from '../src/metrics';
import type { Storage } from '../src/storage';

export interface ValidationWorkerDeps {
  config: Config;
  sandbox: Sandbox;
  storage: Storage;
  connection: NativeConnection;
  log: Logger;
  /** Finished validations are counted into it. */
  metrics?: Metrics;
  /** Bundle once and share when a process (or a test suite) creates several workers. */
  workflowBundle?: WorkflowBundleWithSourceMap;
}

export function bundleValidationWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath: require.resolve('../workflows/validation-queue'), logger: quietBundlerLogger });
}

const noop = () => undefined;
export const quietBundlerLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };

export async function createValidationWorker(deps: ValidationWorkerDeps): Promise<Worker> {
  const { config } = deps;
  return Worker.create({
    connection: deps.connection,
    namespace: config.temporal.namespace,
    taskQueue: config.validationQueue,
    workflowBundle: deps.workflowBundle ?? (await bundleValidationWorkflows()),
    activities: {
      ...createValidationActivities({ config, sandbox: deps.sandbox, storage: deps.storage, log: deps.log, metrics: deps.metrics }),
      // The sweep reads pins from visibility through the worker's own connection.
      ...createRetentionActivities({
        config,
        storage: deps.storage,
        client: new Client({ connection: deps.connection, namespace: config.temporal.namespace }),
        log: deps.log,
      }),
    },
    // Sandbox runs are the scarce resource (a container start eats a core for ~1 s).
    maxConcurrentActivityTaskExecutions: config.validation.workerConcurrency,
    // Cancellation reaches an activity only through heartbeats: keep them prompt.
    maxHeartbeatThrottleInterval: '1 second',
  });
}
