/**
 * What /metrics shows, in Prometheus's text format (prom-client). Every label takes its values from a
 * closed set (route templates, status codes, error and finding codes, queue names from the config,
 * sandbox kinds, task failure types), never from what a client sent, so no request can add series.
 * Each process keeps its own: the API counts requests, a validation worker validations, a task worker
 * task runs; a process running all roles has them all.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PoolStats, RunKind, RunResult, RunscInfo, SandboxObserver } from '../../sandbox';
import type { ValidationStatus } from '../../domain/validation';
import type { TaskFailureType, TaskPriority } from '../../domain/task';
import type { QueueReading } from '../task-queues';

/** How a task run (one attempt) ended: `ok`, or the failure type its client sees. */
export type TaskRunOutcome = 'ok' | TaskFailureType;

export class Metrics {
  readonly registry = new Registry();
  private readonly others: Registry[] = [];
  private readonly beforeScrape: (() => unknown)[] = [];

  private readonly httpRequests = new Counter({
    name: 'taskflow_http_requests_total',
    help: 'HTTP requests answered, by method, route template, status and error code ("" when none)',
    labelNames: ['method', 'route', 'status', 'code'],
    registers: [this.registry],
  });
  private readonly httpSeconds = new Histogram({
    name: 'taskflow_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by method and route template',
    labelNames: ['method', 'route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly validations = new Counter({
    name: 'taskflow_validations_total',
    help: 'Validations finished, by final status (VALIDATED, REJECTED)',
    labelNames: ['status'],
    registers: [this.registry],
  });
  private readonly findings = new Counter({
    name: 'taskflow_validation_findings_total',
    help: "Findings of finished validations, by finding code, severity and the validation's final status",
    labelNames: ['code', 'severity', 'status'],
    registers: [this.registry],
  });
  private readonly containerStarts = new Histogram({
    name: 'taskflow_sandbox_container_start_seconds',
    help: 'Sandbox container start (create, start, agent ready), by kind, warm (started ahead) and result',
    labelNames: ['kind', 'warm', 'result'],
    buckets: [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20],
    registers: [this.registry],
  });
  private readonly runs = new Histogram({
    name: 'taskflow_sandbox_run_seconds',
    help: 'Sandbox checks and runs, from taking a container to the outcome, by kind (check, validation, keyed, cold) and result',
    labelNames: ['kind', 'result'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  private readonly taskRuns = new Counter({
    name: 'taskflow_task_runs_total',
    help: 'Task runs (attempts) finished, by priority and outcome (ok or the failure type)',
    labelNames: ['priority', 'outcome'],
    registers: [this.registry],
  });

  /** Node's own (CPU, memory, event loop, GC), as prom-client names them. Once per process: it keeps timers. */
  collectProcessMetrics(): this {
    collectDefaultMetrics({ register: this.registry });
    return this;
  }

  /** Another registry rendered on the same page (the Temporal SDK's), with a hook to refresh it first. */
  include(registry: Registry, refresh?: () => unknown): this {
    this.others.push(registry);
    if (refresh) this.beforeScrape.push(refresh);
    return this;
  }

  request(method: string, route: string, status: number, code: string, seconds: number): void {
    this.httpRequests.inc({ method, route, status: String(status), code });
    this.httpSeconds.observe({ method, route }, seconds);
  }

  validationFinished(final: Pick<ValidationStatus, 'status' | 'findings'>): void {
    this.validations.inc({ status: final.status });
    for (const f of final.findings) this.findings.inc({ code: f.code, severity: f.severity, status: final.status });
  }

  taskRunFinished(priority: TaskPriority, outcome: TaskRunOutcome): void {
    this.taskRuns.inc({ priority, outcome });
  }

  /** For createSandbox({observer}). */
  sandboxObserver(): SandboxObserver {
    return {
      containerStarted: (kind, warm, seconds, ok) =>
        this.containerStarts.observe({ kind, warm: String(warm), result: ok ? 'ok' : 'error' }, seconds),
      runFinished: (kind: RunKind, seconds: number, result: RunResult) => this.runs.observe({ kind, result }, seconds),
    };
  }

  /** Which sandbox runtime this process uses: one series, value 1 (runsc's version and platform as the binary says). */
  sandboxRuntime(runtime: 'runsc' | 'runc', runsc?: Pick<RunscInfo, 'version' | 'platform'>): this {
    new Gauge({
      name: 'taskflow_sandbox_runtime_info',
      help: 'The sandbox runtime in use (value 1), by runtime (runsc, or runc when insecurely allowed), runsc version and platform',
      labelNames: ['runtime', 'version', 'platform'],
      registers: [this.registry],
    }).set({ runtime, version: runsc?.version ?? '', platform: runsc?.platform ?? '' }, 1);
    return this;
  }

  /** Pool sizes, read at each scrape. */
  watchPools(stats: () => PoolStats): this {
    new Gauge({
      name: 'taskflow_sandbox_pool_containers',
      help: 'Containers in the sandbox pools now, by pool (validation, checker, keyed) and state (ready, starting, idle, busy, spare)',
      labelNames: ['pool', 'state'],
      registers: [this.registry],
      collect() {
        const s = stats();
        this.set({ pool: 'validation', state: 'ready' }, s.validation.ready);
        this.set({ pool: 'validation', state: 'starting' }, s.validation.starting);
        this.set({ pool: 'checker', state: 'idle' }, s.checker.idle);
        this.set({ pool: 'checker', state: 'busy' }, s.checker.busy);
        this.set({ pool: 'checker', state: 'starting' }, s.checker.starting);
        if (s.keyed) {
          this.set({ pool: 'keyed', state: 'idle' }, s.keyed.idle);
          this.set({ pool: 'keyed', state: 'busy' }, s.keyed.busy);
          this.set({ pool: 'keyed', state: 'spare' }, s.keyed.spares);
          this.set({ pool: 'keyed', state: 'starting' }, s.keyed.starting);
        }
      },
    });
    return this;
  }

  /** Task queue backlog and pollers, at each scrape from `read` (which caches: both gauges call it). */
  watchQueues(read: () => Promise<QueueReading[]>): this {
    const once = () => read().catch(() => [] as QueueReading[]);
    new Gauge({
      name: 'taskflow_task_queue_backlog',
      help: "Tasks waiting in a Temporal task queue (the server's approximate backlog), by queue and type (workflow, activity)",
      labelNames: ['queue', 'type'],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const r of await once()) this.set({ queue: r.queue, type: r.type }, r.backlog);
      },
    });
    new Gauge({
      name: 'taskflow_task_queue_pollers',
      help: 'Workers polling a Temporal task queue recently, by queue and type (workflow, activity)',
      labelNames: ['queue', 'type'],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const r of await once()) this.set({ queue: r.queue, type: r.type }, r.pollers);
      },
    });
    return this;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  async render(): Promise<string> {
    for (const refresh of this.beforeScrape) refresh();
    const pages = await Promise.all([this.registry, ...this.others].map((r) => r.metrics()));
    return pages.join('\n');
  }
}
