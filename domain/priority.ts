/**
 * How TaskFlow asks Temporal to order queued work (task-queue Priority & Fairness, server 1.29+):
 * the server, not TaskFlow, decides which queued task a free worker slot gets.
 * - `priorityKey`: lower goes first (the server's range is 1..5 by default, unset means 3).
 *   High-priority tasks are dispatched before low ones queued on the same task queue.
 * - `fairnessKey`: the owner. Within one priority, the server hands out tasks round-robin by key
 *   (weighted, default weight 1), so one owner's backlog cannot make another owner wait behind it.
 * Activities inherit their workflow's priority. The server must have fairness enabled and the task
 * queues must have one partition (see README "Fairness and priority"); otherwise it falls back to FIFO.
 */
import type { Priority } from '@temporalio/common';
import type { TaskPriority } from './task';

const TASK_PRIORITY_KEY: Readonly<Record<TaskPriority, number>> = { high: 1, low: 5 };

/** Owners are at most 32 ASCII characters (domain/names.ts): within the server's 64-byte fairness-key limit. */
export const taskPriority = (priority: TaskPriority, owner: string): Priority => ({
  priorityKey: TASK_PRIORITY_KEY[priority],
  fairnessKey: owner,
});

export const validationPriority = (owner: string): Priority => ({ fairnessKey: owner });
