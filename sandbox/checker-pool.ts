/**
 * Long-lived checker containers. The static checker only parses an upload (Python's `ast`), it never
 * runs it, so one locked-down container (same spec as every sandbox) serves many checks, one at a time,
 * each in a fresh checker process with everything else in the container killed afterwards (agent.py
 * `Checker`). That saves a container start (~0.5 s of a core) per validation. A container that dies,
 * times out, is cancelled or reaches `maxChecks` is replaced. Size 0: a fresh container per check.
 */
import type { SandboxLogger } from './logger';
import type { AgentContainer } from './agent-container';

export class CheckerPool {
  private idle: AgentContainer[] = [];
  private busy = new Set<AgentContainer>();
  private starting = 0;
  private closed = false;
  private waiters: ((a: AgentContainer) => void)[] = [];

  constructor(
    private readonly start: () => Promise<AgentContainer>,
    private readonly size: number,
    private readonly maxChecks: number,
    private readonly log: SandboxLogger,
  ) {}

  fill(): void {
    while (!this.closed && this.idle.length + this.busy.size + this.starting < this.size) {
      this.starting++;
      this.start()
        .then((a) => {
          this.starting--;
          if (this.closed) return void a.destroy();
          this.hand(a);
          this.fill();
        })
        .catch((err: Error) => {
          this.starting--;
          if (this.closed) return;
          this.log.error('checker container start failed', { error: err.message });
          setTimeout(() => this.fill(), 2000).unref();
        });
    }
  }

  /** A checker container for one check; give it back with `release`. */
  async acquire(): Promise<AgentContainer> {
    if (this.size === 0) return this.start();
    while (this.idle.length) {
      const a = this.idle.shift()!;
      if (a.isAlive) return this.take(a);
      void a.destroy();
    }
    this.fill();
    return new Promise((resolve) => this.waiters.push((a) => resolve(this.take(a))));
  }

  /** Back for the next check, or replaced when it is no longer fit to serve one. */
  release(agent: AgentContainer, healthy: boolean): void {
    this.busy.delete(agent);
    if (this.size > 0 && !this.closed && healthy && agent.isAlive && agent.uses < this.maxChecks) {
      this.hand(agent);
      return;
    }
    void agent.destroy();
    this.fill();
  }

  stats(): { idle: number; busy: number; starting: number } {
    return { idle: this.idle.length, busy: this.busy.size, starting: this.starting };
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.idle, ...this.busy];
    this.idle = [];
    this.busy.clear();
    await Promise.all(all.map((a) => a.destroy()));
  }

  private take(a: AgentContainer): AgentContainer {
    this.busy.add(a);
    return a;
  }

  private hand(a: AgentContainer): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(a);
    else this.idle.push(a);
  }
}
