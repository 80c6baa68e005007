/** Connections to Temporal, made from the typed config. */
import { Client, Connection, ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { NativeConnection } from '@temporalio/worker';
import type { Config } from '../src/config';
import type { Logger } from '../src/logger';
import { RETENTION_WORKFLOW, retentionScheduleId } from '../domain/retention';
import { SEARCH_ATTRIBUTES } from '../domain/search-attributes';

/**
 * A client whose connection is made lazily: the API starts (and answers 503 on uploads, keeping
 * them for later) even while Temporal is down.
 */
export function createClient(config: Config): { client: Client; connection: Connection } {
  const connection = Connection.lazy({ address: config.temporal.address });
  return { client: new Client({ connection, namespace: config.temporal.namespace }), connection };
}

/** Whether Temporal answers its health check within `ms`. */
export function temporalHealthy(connection: Connection, ms = 2000): Promise<boolean> {
  return connection
    .withDeadline(Date.now() + ms, () => connection.healthService.check({}))
    .then(
      () => true,
      () => false,
    );
}

/**
 * Registers those of domain/search-attributes.ts that the namespace lacks, each with its own type (idempotent;
 * the only place they are registered besides the test harness). Logs and carries on when not allowed or
 * unreachable; resolves to whether they are all there.
 */
export async function ensureSearchAttributes(client: Client, config: Config, log: Logger): Promise<boolean> {
  const namespace = config.temporal.namespace;
  try {
    const svc = client.connection.operatorService;
    const have = await svc.listSearchAttributes({ namespace });
    const existing = new Set(Object.keys(have.customAttributes ?? {}));
    const missing = SEARCH_ATTRIBUTES.filter((k) => !existing.has(k.name));
    if (missing.length === 0) return true;
    await svc.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((k) => [k.name, encodeSearchAttributeIndexedValueType(k.type)!])),
    });
    log.info('registered search attributes', { namespace, names: missing.map((k) => k.name) });
    return true;
  } catch (err) {
    log.warn('could not check or register search attributes; register them by hand', {
      namespace,
      attributes: SEARCH_ATTRIBUTES.map((k) => `${k.name}=${k.type}`),
      error: err as Error,
    });
    return false;
  }
}

/**
 * The Temporal schedule that starts the retention sweep every RETENTION_SWEEP_INTERVAL_MINUTES on the
 * validation queue (idempotent: an existing schedule is brought to the configured interval). Overlaps
 * are skipped; a sweep missed while Temporal was down runs once when it is back (within a day).
 */
export async function ensureRetentionSchedule(client: Client, config: Config, log: Logger): Promise<void> {
  const scheduleId = retentionScheduleId(config.validationQueue);
  const spec = { intervals: [{ every: `${config.retention.sweepIntervalMinutes}m` as const }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: RETENTION_WORKFLOW,
    taskQueue: config.validationQueue,
    workflowId: scheduleId,
  };
  try {
    await client.schedule.create({ scheduleId, spec, action, policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 day' } });
    log.info('retention schedule created', { scheduleId, everyMinutes: config.retention.sweepIntervalMinutes });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, spec, action }));
  }
}

/** The worker's native connection, retried until Temporal answers or `signal` aborts. */
export async function connectWorker(config: Config, log: Logger, signal?: AbortSignal): Promise<NativeConnection> {
  let delay = 500;
  for (;;) {
    try {
      return await NativeConnection.connect({ address: config.temporal.address });
    } catch (err) {
      if (signal?.aborted) throw err;
      log.warn('Temporal is not reachable yet; retrying', { address: config.temporal.address, inMs: delay, error: err as Error });
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }
}
