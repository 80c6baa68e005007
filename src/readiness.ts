/**
 * /readyz: whether this process can do its work now, as opposed to /healthz (it is alive, Temporal
 * answers). Each role adds the checks it depends on: Temporal and the database reachable (all), workers polling the task
 * queues (the API: someone will pick its work up), the sandbox engine and runtime answering and the
 * process's own workers running (the workers). Checks run in parallel, each bounded by its own timeout;
 * a report is reused for a moment, so a flood of requests costs one round of checks.
 */
import type { SandboxHealth } from '../sandbox';
import type { QueueReading } from './task-queues';

export interface CheckResult {
  ok: boolean;
  /** Why not (or what was seen), for an operator. */
  detail?: string;
}

export interface ReadinessReport {
  status: 'ready' | 'not_ready';
  checks: Record<string, CheckResult>;
}

export type Check = () => Promise<CheckResult>;

export class Readiness {
  private readonly checks = new Map<string, Check>();
  private cached?: { at: number; report: Promise<ReadinessReport> };

  constructor(private readonly maxAgeMs = 1000) {}

  add(name: string, check: Check): this {
    this.checks.set(name, check);
    return this;
  }

  report(): Promise<ReadinessReport> {
    const now = Date.now();
    if (!this.cached || now - this.cached.at > this.maxAgeMs) this.cached = { at: now, report: this.run() };
    return this.cached.report;
  }

  private async run(): Promise<ReadinessReport> {
    const entries = await Promise.all(
      [...this.checks].map(async ([name, check]): Promise<[string, CheckResult]> => {
        try {
          return [name, await check()];
        } catch (err) {
          return [name, { ok: false, detail: (err as Error).message }];
        }
      }),
    );
    const checks = Object.fromEntries(entries);
    return { status: entries.every(([, r]) => r.ok) ? 'ready' : 'not_ready', checks };
  }
}

export function temporalCheck(healthy: () => Promise<boolean>): Check {
  return async () => ((await healthy()) ? { ok: true } : { ok: false, detail: 'Temporal does not answer' });
}

export function databaseCheck(healthy: () => Promise<boolean>): Check {
  return async () => ((await healthy()) ? { ok: true } : { ok: false, detail: 'PostgreSQL does not answer' });
}

/** Every queue has a worker polling it (for workflow or activity tasks) recently. */
export function pollersCheck(read: () => Promise<QueueReading[]>, queues: readonly string[]): Check {
  return async () => {
    const readings = await read();
    const idle = queues.filter((q) => !readings.some((r) => r.queue === q && r.pollers > 0));
    return idle.length ? { ok: false, detail: `no worker polls ${idle.join(', ')}` } : { ok: true };
  };
}

export function sandboxCheck(health: () => Promise<SandboxHealth>): Check {
  return async () => {
    const h = await health();
    const ok = h.engine && !h.lastStartFailed;
    const runtime = h.runsc ? `runsc ${h.runsc.version} (${h.runsc.platform})` : h.runtime;
    return { ok, detail: ok ? `Docker answers, ${runtime} starts containers` : (h.problem ?? 'the sandbox engine is not usable') };
  };
}

/** This process's own workers (name → still running). */
export function workersCheck(running: () => Record<string, boolean>): Check {
  return async () => {
    const stopped = Object.entries(running())
      .filter(([, up]) => !up)
      .map(([name]) => name);
    return stopped.length ? { ok: false, detail: `stopped: ${stopped.join(', ')}` } : { ok: true };
  };
}
