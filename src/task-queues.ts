/**
 * What Temporal knows about TaskFlow's task queues: the approximate backlog and the workers polling
 * them (DescribeTaskQueue), for /metrics and /readyz. Read at most every few seconds, one read at a
 * time, each bounded, however often it is asked.
 */
import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

export interface QueueReading {
  queue: string;
  type: 'workflow' | 'activity';
  backlog: number;
  /** Workers whose last poll began within POLLER_FRESH_MS. */
  pollers: number;
}

/**
 * A poller's `lastAccessTime` is when its current long poll began: an idle live worker renews it about
 * every 60 s, a stopped one stays listed (for minutes) with it ageing. Measured on the dev server.
 */
export const POLLER_FRESH_MS = 90_000;

const TYPES = [
  ['workflow', temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW],
  ['activity', temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY],
] as const;

export class TaskQueueProbe {
  private cached?: { at: number; readings: Promise<QueueReading[]> };

  constructor(
    private readonly connection: Connection,
    private readonly namespace: string,
    private readonly queues: readonly string[],
    private readonly o: { maxAgeMs?: number; timeoutMs?: number } = {},
  ) {}

  /** The last reading if younger than maxAgeMs (5 s), else a new one; rejects when Temporal does not answer. */
  read(): Promise<QueueReading[]> {
    const now = Date.now();
    if (!this.cached || now - this.cached.at > (this.o.maxAgeMs ?? 5000)) {
      const readings = this.describeAll();
      this.cached = { at: now, readings };
      // A failed read is not kept: the next caller asks again.
      readings.catch(() => {
        if (this.cached?.readings === readings) this.cached = undefined;
      });
    }
    return this.cached.readings;
  }

  /**
   * Settles only once every call has: the client retries a call that found Temporal away until the
   * deadline, and a read that answered at the first failure left the others' retries running (a
   * retry that fires after its connection closed throws where nobody catches it).
   */
  private async describeAll(): Promise<QueueReading[]> {
    const deadline = Date.now() + (this.o.timeoutMs ?? 2000);
    const results = await this.connection.withDeadline(deadline, () =>
      Promise.allSettled(this.queues.flatMap((queue) => TYPES.map(([type, taskQueueType]) => this.describe(queue, type, taskQueueType)))),
    );
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    return results.map((r) => (r as PromiseFulfilledResult<QueueReading>).value);
  }

  private async describe(
    queue: string,
    type: QueueReading['type'],
    taskQueueType: temporal.api.enums.v1.TaskQueueType,
  ): Promise<QueueReading> {
    const res = await this.connection.workflowService.describeTaskQueue({
      namespace: this.namespace,
      taskQueue: { name: queue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType,
      reportStats: true,
    });
    const fresh = Date.now() - POLLER_FRESH_MS;
    const pollers = (res.pollers ?? []).filter((p) => {
      const seconds = p.lastAccessTime?.seconds;
      return seconds !== undefined && seconds !== null && Number(seconds) * 1000 >= fresh;
    }).length;
    return { queue, type, backlog: Number(res.stats?.approximateBacklogCount ?? 0), pollers };
  }
}
