/**
 * Where the API starts workflows. Normally through its own (lazily connected) client. When workers of
 * this same process poll a workflow's task queue, through a client on their NativeConnection with
 * eager start: the server hands the first workflow task back in the start response and the local
 * worker runs it at once (no task-queue round trip). The server falls back to normal dispatch by itself
 * when the local worker has no free slot.
 */
import type { Client, WorkflowHandleWithStartDetails, WorkflowStartOptions } from '@temporalio/client';

export class WorkflowStarter {
  private eager?: { client: Client; taskQueues: ReadonlySet<string> };

  constructor(private readonly client: Client) {}

  /** From now on, start workflows on these task queues eagerly through `client` (built on the workers' NativeConnection). */
  enableEager(client: Client, taskQueues: string[]): void {
    this.eager = { client, taskQueues: new Set(taskQueues) };
  }

  /** Back to the API's own client (before the workers and their connection stop). */
  disableEager(): void {
    this.eager = undefined;
  }

  /** Starts `workflowType`; `deadline` (epoch ms) bounds the start call. */
  start(workflowType: string, options: WorkflowStartOptions, deadline?: number): Promise<WorkflowHandleWithStartDetails> {
    const eager = this.eager?.taskQueues.has(options.taskQueue) ? this.eager.client : undefined;
    const client = eager ?? this.client;
    const start = () => client.workflow.start(workflowType, { ...options, ...(eager ? { requestEagerStart: true } : {}) });
    return deadline === undefined ? start() : client.connection.withDeadline(deadline, start);
  }
}
