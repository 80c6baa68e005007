/**
 * One suite's whole pipeline in this process, on the suite's Temporal server: a sandbox (warm
 * validation pool and keyed pool), the API, a validation worker and the task workers.
 */
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { startTaskWorkers } from '../../app/task-worker';
import { createValidationWorker } from '../../app/validation-worker';
import type { Sandbox } from '../../sandbox';
import type { Config } from '../../src/config';
import { silentLogger, type Logger } from '../../src/logger';
import { TemporalTaskService } from '../../src/tasks/temporal-task-service';
import { startSandbox } from './sandbox';
import type { StartedTemporal } from './temporal';
import { buildApi, type TestApi } from './validation';

export interface Pipeline {
  sandbox: Sandbox;
  api: TestApi;
  /** Workers first (they hold the connection), then the sandbox. */
  stop(): Promise<void>;
}

export async function startPipeline(
  config: Config,
  temporal: StartedTemporal,
  opts: { workflowBundle?: WorkflowBundleWithSourceMap; apiLog?: Logger } = {},
): Promise<Pipeline> {
  const sandbox = await startSandbox(config, { validationPool: true, keyedLimits: config.taskLimits });
  try {
    const api = await buildApi(
      config,
      temporal.env.client,
      (storage) => new TemporalTaskService({ client: temporal.env.client, config, log: silentLogger, records: storage.tasks }),
      opts.apiLog,
    );
    const connection = temporal.env.nativeConnection;
    const validationWorker = await createValidationWorker({ config, sandbox, storage: api.storage, connection, log: silentLogger });
    const validationRun = validationWorker.run();
    const taskWorkers = await startTaskWorkers({
      config,
      sandbox,
      connection,
      client: temporal.env.client,
      log: silentLogger,
      loadVersion: (owner, title, sha) => api.storage.files.loadVersion(owner, title, sha),
      loadLock: (sha) => api.storage.locks.text(sha),
      taskFinished: (taskId, status, bytes) => api.storage.tasks.finished(taskId, status, bytes),
      ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : {}),
    });
    return {
      sandbox,
      api,
      async stop() {
        await taskWorkers.shutdown();
        validationWorker.shutdown();
        await validationRun;
        await sandbox.close();
        await api.storage.close();
      },
    };
  } catch (err) {
    await sandbox.close();
    throw err;
  }
}
