/**
 * The Temporal SDK's own metrics (its Rust core's: polls, slots, task latencies, RPCs...), which the
 * Runtime buffers (app/temporal-runtime.ts), re-emitted through prom-client under their own names
 * (`temporal_*`, as the SDK's Prometheus exporter would name them), so they share /metrics.
 */
import type { BufferedMetricUpdate, MetricsBuffer } from '@temporalio/worker';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Every attribute the core puts on its metrics (sdk-core telemetry/metrics.rs, client/metrics.rs); others are dropped. */
const LABELS = [
  'namespace',
  'task_queue',
  'workflow_type',
  'activity_type',
  'poller_type',
  'worker_type',
  'eager',
  'failure_reason',
  'operation',
  'status_code',
];
/** Seconds: from sub-millisecond local work to the 60 s long polls. */
const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const DRAIN_EVERY_MS = 5000;

type Instrument = Counter | Gauge | Histogram;

export class TemporalSdkMetrics {
  readonly registry = new Registry();
  private readonly instruments = new Map<string, Instrument>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly buffer: MetricsBuffer) {
    // The buffer drops updates when full: drain it between scrapes too.
    this.timer = setInterval(() => this.drain(), DRAIN_EVERY_MS);
    this.timer.unref();
  }

  /** Applies what the SDK buffered since the last call. */
  drain(): void {
    for (const u of this.buffer.retrieveUpdates()) this.apply(u);
  }

  close(): void {
    clearInterval(this.timer);
  }

  private apply(u: BufferedMetricUpdate): void {
    const { name, kind, description } = u.metric;
    let instrument = this.instruments.get(name);
    if (!instrument) {
      const config = { name, help: description || name, labelNames: LABELS, registers: [this.registry] };
      instrument =
        kind === 'counter'
          ? new Counter(config)
          : kind === 'histogram'
            ? new Histogram({ ...config, buckets: BUCKETS })
            : new Gauge(config);
      this.instruments.set(name, instrument);
    }
    const labels: Record<string, string> = {};
    for (const k of LABELS) if (u.attributes[k] !== undefined) labels[k] = String(u.attributes[k]);
    // Counters and up-down counters arrive as deltas, gauges and histograms as values.
    if (instrument instanceof Histogram) instrument.observe(labels, u.value);
    else if (instrument instanceof Counter) instrument.inc(labels, u.value);
    else if (kind === 'up-down-counter') instrument.inc(labels, u.value);
    else instrument.set(labels, u.value);
  }
}
