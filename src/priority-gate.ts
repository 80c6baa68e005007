/**
 * Sandbox slots shared by a task worker's high- and low-priority Temporal workers. Whoever waits
 * for a slot, high goes first. A low waiter also gives way for `graceMs` after it arrived and
 * after a slot last freed, so a high task still being fetched from its queue (or still in its
 * workflow task) at that moment wins. That makes "high before low under a backlog" hold without
 * server-side priority; the price is up to `graceMs` of extra latency for low-priority tasks.
 */
export type Priority = 'high' | 'low';

interface Waiter {
  priority: Priority;
  since: number;
  grant: () => void;
}

export class PriorityGate {
  private free: number;
  private waiters: Waiter[] = [];
  // Start-up counts as a release: both queues are being polled at once then.
  private lastRelease = Date.now();
  private timer?: NodeJS.Timeout;

  constructor(
    readonly slots: number,
    private readonly graceMs = 300,
  ) {
    this.free = slots;
  }

  /** Resolves with a release function once a slot is ours; rejects if `signal` aborts first. */
  acquire(priority: Priority, signal?: AbortSignal): Promise<() => void> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        priority,
        since: Date.now(),
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          let released = false;
          resolve(() => {
            if (released) return;
            released = true;
            this.free++;
            this.lastRelease = Date.now();
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
      const high = this.waiters.find((w) => w.priority === 'high');
      let next = high;
      if (!next) {
        const wait = Math.max(this.lastRelease, this.waiters[0].since) + this.graceMs - Date.now();
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
