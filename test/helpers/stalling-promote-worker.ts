/**
 * A validation worker process for test/validation-worker-crash.test.ts: the real workflow and activities,
 * except that `promote` (a local activity) writes STALL_MARKER and then never returns, so the test can
 * SIGKILL the process in the middle of it. Configured from the environment like app/main.ts.
 */
import fs from 'node:fs';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createValidationActivities } from '../../activities/validation';
import { bundleValidationWorkflows } from '../../app/validation-worker';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { openStorage } from '../../src/storage';
import { createSandbox } from '../../sandbox';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const log = createLogger('warn');
  const [storage, sandbox, workflowBundle, connection] = await Promise.all([
    openStorage(config, log),
    createSandbox(config.sandbox, log, { validationPool: true }),
    bundleValidationWorkflows(),
    NativeConnection.connect({ address: config.temporal.address }),
  ]);
  const activities = createValidationActivities({ config, sandbox, storage, log });
  const worker = await Worker.create({
    connection,
    taskQueue: config.validationQueue,
    workflowBundle,
    activities: {
      ...activities,
      promote: async () => {
        fs.writeFileSync(process.env.STALL_MARKER!, 'promoting');
        return new Promise<never>(() => undefined);
      },
    },
  });
  process.stderr.write('stalling worker polling\n');
  await worker.run();
}

void main();
