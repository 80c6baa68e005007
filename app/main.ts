/**
 * The TaskFlow process: loads the config once, then runs the roles in TASKFLOW_ROLES (default: all
 * three: the HTTP API, the validation worker, the task workers). SIGINT / SIGTERM stop it gracefully: the API stops
 * accepting, the worker finishes or hands back its activities, sandboxes are removed.
 */
import type { Server } from 'node:http';
import { Client } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import type { Express } from 'express';
import { createApp, createOpsApp } from '../src/api/app';
import { createHttpServer, listen } from '../src/api/server';
import { resolveCredentials } from '../src/api/auth';
import { ConfigError, loadConfig, type Config } from '../src/config';
import { createLogger, type Logger } from '../src/logger';
import { Metrics } from '../src/metrics';
import { TemporalSdkMetrics } from '../src/metrics/temporal-sdk';
import { databaseCheck, pollersCheck, Readiness, sandboxCheck, temporalCheck, workersCheck } from '../src/readiness';
import { TaskQueueProbe } from '../src/task-queues';
import { openStorage } from '../src/storage';
import { startTaskWorkers } from './task-worker';
import { TemporalTaskService } from '../src/tasks/temporal-task-service';
import { connectWorker, createClient, ensureRetentionSchedule, ensureSearchAttributes, temporalHealthy } from './temporal';
import { installTemporalRuntime } from './temporal-runtime';
import { ValidationService } from '../src/validation/service';
import { WorkflowStarter } from '../src/workflow-starter';
import { createValidationWorker } from './validation-worker';
import { createSandbox, type Sandbox } from '../sandbox';

const RECOVERY_INTERVAL_MS = 30000;

export async function run(config: Config, log: Logger): Promise<() => Promise<void>> {
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch((err: Error) => log.error('shutdown step failed', { error: err }));
  };
  const serve = async (app: Express, port: number, what: string) => {
    const server: Server = createHttpServer(app, config.http, log.child({ component: 'http' }));
    await listen(server, { ...config.http, port });
    stops.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    );
    const addr = server.address();
    log.info(`${what} listening`, { url: `http://${config.http.host}:${typeof addr === 'object' && addr ? addr.port : port}` });
  };
  try {
    const storage = await openStorage(config, log);
    stops.push(() => storage.close());
    const { client, connection: clientConnection } = createClient(config);
    stops.push(() => clientConnection.close());
    const starter = new WorkflowStarter(client);
    let attributes: Promise<boolean> | undefined;

    // The operator's view (/metrics, /readyz): each role below adds what it has to show and depends on.
    const metrics = new Metrics().collectProcessMetrics();
    const healthy = () => temporalHealthy(clientConnection);
    let started = false;
    const readiness = new Readiness()
      .add('startup', async () => (started ? { ok: true } : { ok: false, detail: 'starting' }))
      .add('temporal', temporalCheck(healthy))
      .add(
        'database',
        databaseCheck(() => storage.db.healthy()),
      );
    const queueNames = [config.validationQueue, config.taskQueue];
    const queueProbe = new TaskQueueProbe(clientConnection, config.temporal.namespace, queueNames);
    metrics.watchQueues(() => queueProbe.read());
    if (config.http.opsPort !== undefined)
      await serve(createOpsApp({ temporalHealthy: healthy, log, metrics, readiness }), config.http.opsPort, 'operations endpoint');

    if (config.roles.includes('api')) {
      const creds = await resolveCredentials(config);
      if (creds.dev) {
        // Printed on purpose (dev mode only): this is how the developer gets the token.
        process.stdout.write(
          `TaskFlow dev mode (no TASKFLOW_API_KEYS): owner "dev", token ${creds.dev.token}\n` +
            `  ${creds.dev.created ? 'written to' : 'read from'} ${creds.dev.file}\n`,
        );
      }
      const validations = new ValidationService({ config, storage, client, log, starter });
      // The API is only useful while workers serve its queues (in this process or others).
      readiness.add(
        'pollers',
        pollersCheck(() => queueProbe.read(), queueNames),
      );
      const app = createApp({
        config,
        keys: creds.keys,
        validations,
        tasks: new TemporalTaskService({ client, config, log, records: storage.tasks, starter }),
        log,
        temporalHealthy: healthy,
        metrics,
        readiness,
      });
      await serve(app, config.http.port, 'API');

      attributes = ensureSearchAttributes(client, config, log);
      // Uploads whose workflow start was never confirmed (a crash, Temporal down): start them now and then;
      // validations whose workflow ended without a verdict (terminated, timed out): finish their records.
      const recover = () =>
        Promise.all([validations.recoverPendingStarts(), validations.reconcileEnded()]).catch((err: Error) =>
          log.warn('recovery pass failed', { error: err }),
        );
      void recover();
      const timer = setInterval(recover, RECOVERY_INTERVAL_MS);
      timer.unref();
      stops.push(async () => clearInterval(timer));
    }

    const validating = config.roles.includes('validation-worker');
    const executing = config.roles.includes('task-worker');
    if (!validating && !executing) {
      started = true;
      return stopAll;
    }
    // Before the first NativeConnection: the SDK's logs in our format, its metrics buffered for /metrics.
    const sdkBuffer = installTemporalRuntime(log, config.logLevel);
    if (sdkBuffer) {
      const sdk = new TemporalSdkMetrics(sdkBuffer);
      metrics.include(sdk.registry, () => sdk.drain());
      stops.push(async () => sdk.close());
    }
    // One sandbox runtime per process: single-use validation containers and/or the keyed pool.
    const sandbox: Sandbox = await createSandbox(config.sandbox, log, {
      validationPool: validating,
      ...(executing ? { keyedLimits: config.taskLimits } : {}),
      observer: metrics.sandboxObserver(),
    });
    stops.push(() => sandbox.close());
    metrics.watchPools(() => sandbox.stats()).sandboxRuntime(sandbox.runtime, sandbox.runsc);
    readiness.add(
      'sandbox',
      sandboxCheck(() => sandbox.health()),
    );
    const workers: Record<string, () => boolean> = {};
    readiness.add(
      'workers',
      workersCheck(() => Object.fromEntries(Object.entries(workers).map(([name, up]) => [name, up()]))),
    );
    const connection = await connectWorker(config, log);
    stops.push(() => connection.close());
    // Workflows set them: make sure they exist before polling (again if the API's try found Temporal down).
    if (!(await attributes)) await ensureSearchAttributes(client, config, log);

    if (executing) {
      const tasks = await startTaskWorkers({
        config,
        sandbox,
        connection,
        client,
        log,
        loadVersion: (owner, title, sha) => storage.files.loadVersion(owner, title, sha),
        loadLock: (sha) => storage.locks.text(sha),
        taskFinished: (taskId, status, bytes) => storage.tasks.finished(taskId, status, bytes),
        metrics,
      });
      workers['task-workers'] = () => tasks.running();
      tasks.done.catch((err: Error) => log.error('task workers stopped with an error', { error: err }));
      stops.push(() => tasks.shutdown());
    }

    if (validating) {
      const worker: Worker = await createValidationWorker({ config, sandbox, storage, connection, log, metrics });
      workers['validation-worker'] = () => worker.getState() === 'RUNNING';
      const running = worker.run();
      running.catch((err: Error) => log.error('validation worker stopped with an error', { error: err }));
      stops.push(async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await running.catch(() => undefined);
      });
      log.info('validation worker polling', { taskQueue: config.validationQueue, sandboxRuntime: sandbox.runtime });
      // The worker that runs the sweep makes sure its schedule exists (retried while Temporal is not up).
      let stopped = false;
      stops.push(async () => void (stopped = true));
      void (async () => {
        for (let delay = 1000; !stopped; delay = Math.min(2 * delay, 60000)) {
          try {
            return await ensureRetentionSchedule(client, config, log);
          } catch (err) {
            log.warn('could not create the retention schedule yet; retrying', { inMs: delay, error: err as Error });
            await new Promise((r) => setTimeout(r, delay).unref());
          }
        }
      })();
    }

    if (config.roles.includes('api')) {
      // The API and workers share this process: start their workflows eagerly (src/workflow-starter.ts).
      const queues = [...(validating ? [config.validationQueue] : []), ...(executing ? [config.taskQueue] : [])];
      starter.enableEager(new Client({ connection, namespace: config.temporal.namespace }), queues);
      // Runs first at shutdown: no start may use the workers' connection once they stop.
      stops.push(async () => starter.disableEager());
      log.info('eager workflow start on', { taskQueues: queues });
    }
    started = true;
  } catch (err) {
    await stopAll();
    throw err;
  }
  return stopAll;
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      createLogger('error', { service: 'taskflow', pid: process.pid }).error('invalid configuration', { problems: err.problems });
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel, { service: 'taskflow', pid: process.pid });
  // Node would print these in its own format; they end the process as they would have.
  process.on('uncaughtException', (err) => {
    log.error('uncaught exception', { error: err });
    process.exit(1);
  });
  process.on('unhandledRejection', (reason) => {
    log.error('unhandled rejection', { error: reason });
    process.exit(1);
  });
  let stop: () => Promise<void>;
  try {
    stop = await run(config, log);
  } catch (err) {
    log.error('start-up failed', { error: err as Error });
    process.exit(1);
  }
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    log.info('shutting down', { signal });
    stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

if (require.main === module) void main();
