/**
 * Sandbox slots shared by a task worker's high- and low-priority Temporal workers. Whoever waits
 * for a slot, high goes first. The high worker fetches one task more than there are slots, so a
 * high task is already waiting here whenever a slot frees. Right after start-up both queues are
 * fetched at once and a backlog's high tasks may still be in their workflow tasks: for
 * `startupGraceMs` low waiters are held back, so they cannot overtake them. Together that makes
 * "high before low under a backlog" hold without server-side priority.
 */
import type { TaskPriority as Priority } from '../domain/task';

export type { Priority };

interface Waiter {
  priority: Priority;
  grant: () => void;
}

export class PriorityGate {
  private free: number;
  private waiters: Waiter[] = [];
  private readonly lowAllowedAt: number;
  private timer?: NodeJS.Timeout;

  constructor(
    readonly slots: number,
    startupGraceMs = 1000,
  ) {
    this.free = slots;
    this.lowAllowedAt = Date.now() + startupGraceMs;
  }

  /** Resolves with a release function once a slot is ours; rejects if `signal` aborts first. */
  acquire(priority: Priority, signal?: AbortSignal): Promise<() => void> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        priority,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          let released = false;
          resolve(() => {
            if (released) return;
            released = true;
            this.free++;
            this.dispatch();
          });
        },
      };
      const onAbort = () => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(signal?.reason ?? new Error('aborted'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
      this.dispatch();
    });
  }

  get waiting(): { high: number; low: number } {
    const high = this.waiters.filter((w) => w.priority === 'high').length;
    return { high, low: this.waiters.length - high };
  }

  private dispatch(): void {
    clearTimeout(this.timer);
    while (this.free > 0 && this.waiters.length) {
      let next = this.waiters.find((w) => w.priority === 'high');
      if (!next) {
        const wait = this.lowAllowedAt - Date.now();
        if (wait > 0) {
          this.timer = setTimeout(() => this.dispatch(), wait);
          return;
        }
        next = this.waiters[0];
      }
      this.waiters = this.waiters.filter((w) => w !== next);
      this.free--;
      next.grant();
    }
  }
}
