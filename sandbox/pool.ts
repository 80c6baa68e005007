/**
 * Warm containers. `WarmPool` keeps agents started ahead; each one serves exactly one use and is
 * destroyed. `KeyedPool` may hand the same container back, but only for the same key (owner, file
 * sha256 and dependency layer), up to `maxUses` and while not idle longer than `idleTtlMs`.
 */
import type { SandboxLimits } from './limits';
import type { SandboxLogger as Logger } from './logger';
import type { AgentContainer } from './agent-container';
import type { ContainerKind } from './spec';
import type { DependencyLayer } from './types';

export type StartContainer = (
  kind: ContainerKind,
  limits: SandboxLimits,
  warm: boolean,
  layer?: DependencyLayer,
) => Promise<AgentContainer>;

export class WarmPool {
  private ready: AgentContainer[] = [];
  private starting = 0;
  private closed = false;
  private waiters: ((a: AgentContainer) => void)[] = [];

  constructor(
    private readonly start: StartContainer,
    private readonly kind: ContainerKind,
    readonly limits: SandboxLimits,
    private readonly size: number,
    private readonly log: Logger,
  ) {}

  fill(): void {
    while (!this.closed && this.ready.length + this.starting < this.size) {
      this.starting++;
      this.start(this.kind, this.limits, true)
        .then((a) => {
          this.starting--;
          if (this.closed) return void a.destroy();
          const waiter = this.waiters.shift();
          if (waiter) waiter(a);
          else this.ready.push(a);
          this.fill();
        })
        .catch((err: Error) => {
          this.starting--;
          if (this.closed) return;
          this.log.error('warm pool refill failed', { kind: this.kind, error: err.message });
          // Back off so a broken engine does not spin; callers fall back to starting their own.
          setTimeout(() => this.fill(), 2000).unref();
        });
    }
  }

  /** A warm agent if one is ready, else a freshly started one; either way, for one use only. */
  async acquire(): Promise<AgentContainer> {
    while (this.ready.length) {
      const a = this.ready.shift()!;
      this.fill();
      if (a.isAlive) return a;
      void a.destroy();
    }
    this.fill();
    if (this.size === 0) return this.start(this.kind, this.limits, false);
    // Whichever comes first: a refill finishing, or our own start.
    return new Promise<AgentContainer>((resolve, reject) => {
      let settled = false;
      const take = (a: AgentContainer) => {
        if (settled) {
          this.ready.push(a);
          return;
        }
        settled = true;
        resolve(a);
      };
      this.waiters.push(take);
      this.start(this.kind, this.limits, false).then(
        (a) => {
          this.waiters = this.waiters.filter((w) => w !== take);
          take(a);
        },
        (err) => {
          this.waiters = this.waiters.filter((w) => w !== take);
          if (!settled) {
            settled = true;
            reject(err);
          }
        },
      );
    });
  }

  get readyCount(): number {
    return this.ready.length;
  }

  get startingCount(): number {
    return this.starting;
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = this.ready.splice(0);
    await Promise.all(all.map((a) => a.destroy()));
  }
}

interface Idle {
  agent: AgentContainer;
  key: string;
}

export class KeyedPool {
  private idle: Idle[] = [];
  private busy = new Set<AgentContainer>();
  private sweeper: NodeJS.Timeout;
  private spare: WarmPool;

  constructor(
    private readonly start: StartContainer,
    readonly limits: SandboxLimits,
    private readonly o: { maxContainers: number; maxUses: number; idleTtlMs: number; spares: number },
    log: Logger,
  ) {
    // Spares have never run user code, so they may be claimed by any key.
    this.spare = new WarmPool(start, 'keyed', limits, o.spares, log);
    this.spare.fill();
    this.sweeper = setInterval(() => this.sweep(), Math.max(100, Math.min(o.idleTtlMs, 5000)));
    this.sweeper.unref();
  }

  /**
   * An idle container of this key, else a new one. Spares have no layer mounted (a mount is fixed
   * when a container is created), so a key with a layer starts a container of its own.
   */
  async acquire(key: string, layer?: DependencyLayer): Promise<AgentContainer> {
    const i = this.idle.findIndex((x) => x.key === key && x.agent.isAlive);
    let agent: AgentContainer;
    if (i >= 0) {
      agent = this.idle.splice(i, 1)[0].agent;
    } else {
      // Make room: the least recently used idle container of any key goes first.
      while (this.idle.length && this.idle.length + this.busy.size >= this.o.maxContainers) {
        this.idle.sort((a, b) => a.agent.lastUsedAt - b.agent.lastUsedAt);
        void this.idle.shift()!.agent.destroy();
      }
      agent = layer ? await this.start('keyed', this.limits, false, layer) : await this.spare.acquire();
    }
    this.busy.add(agent);
    return agent;
  }

  /** Back to the pool if it may serve this key again; destroyed otherwise. */
  release(key: string, agent: AgentContainer, healthy: boolean): void {
    this.busy.delete(agent);
    if (healthy && agent.isAlive && agent.uses < this.o.maxUses && this.o.maxContainers > 0) {
      agent.lastUsedAt = Date.now();
      this.idle.push({ agent, key });
    } else {
      void agent.destroy();
    }
  }

  private sweep(): void {
    const now = Date.now();
    const expired = this.idle.filter((x) => now - x.agent.lastUsedAt > this.o.idleTtlMs || !x.agent.isAlive);
    this.idle = this.idle.filter((x) => !expired.includes(x));
    for (const x of expired) void x.agent.destroy();
  }

  get idleCount(): number {
    return this.idle.length;
  }

  stats(): { idle: number; busy: number; spares: number; starting: number } {
    return { idle: this.idle.length, busy: this.busy.size, spares: this.spare.readyCount, starting: this.spare.startingCount };
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await this.spare.close();
    const all = [...this.idle.map((x) => x.agent), ...this.busy];
    this.idle = [];
    this.busy.clear();
    await Promise.all(all.map((a) => a.destroy()));
  }
}
