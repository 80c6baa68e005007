/**
 * The validated versions unfinished tasks are pinned to, from Temporal's visibility: every running
 * `runTask` workflow (scheduled, queued or running) carries its owner and sha256 in its memo.
 */
import type { Client } from '@temporalio/client';
import { TASK_WORKFLOW, type TaskState } from '../../domain/task';
import { pinKey } from './sweep';

export async function pinnedVersions(client: Client): Promise<Set<string>> {
  const pins = new Set<string>();
  for await (const wf of client.workflow.list({ query: `WorkflowType = '${TASK_WORKFLOW}' AND ExecutionStatus = 'Running'` })) {
    const state = (wf.memo as { state?: Partial<TaskState> } | undefined)?.state;
    // A task workflow without its state in the memo cannot say what it needs: refuse to guess.
    if (!state?.owner || !state.sha256) throw new Error(`task workflow ${wf.workflowId} has no owner/sha256 in its memo`);
    pins.add(pinKey(state.owner, state.sha256));
  }
  return pins;
}
