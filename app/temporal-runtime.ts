/**
 * The Temporal SDK's process-wide Runtime, installed before any Worker or NativeConnection exists (after
 * that the SDK has made its own, logging in its own format). Its logs (the TypeScript SDK's, workflow and
 * activity `log` calls, and the Rust core's, forwarded) go through our logger, so every line has one
 * format; its metrics are buffered for /metrics (src/metrics/temporal-sdk.ts).
 */
import { MetricsBuffer, Runtime, type Logger as SdkLogger, type LogLevel as SdkLogLevel, type LogMetadata } from '@temporalio/worker';
import type { LogLevel, Logger } from '../src/logger';

const CORE_LEVEL: Record<LogLevel, SdkLogLevel> = { debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR' };

/** The SDK's Logger on top of ours (its TRACE, never requested, would land at debug). */
export function sdkLogger(log: Logger): SdkLogger {
  const at: Record<SdkLogLevel, (msg: string, meta?: LogMetadata) => void> = {
    TRACE: (m, f) => log.debug(m, f),
    DEBUG: (m, f) => log.debug(m, f),
    INFO: (m, f) => log.info(m, f),
    WARN: (m, f) => log.warn(m, f),
    ERROR: (m, f) => log.error(m, f),
  };
  return { log: (level, m, f) => at[level](m, f), trace: at.TRACE, debug: at.DEBUG, info: at.INFO, warn: at.WARN, error: at.ERROR };
}

/**
 * Installs the Runtime once per process and returns its metrics buffer. When something else installed it
 * first (the test harness does, with this function), that one stays, with its buffer if it has one. The SDK
 * re-creates a Runtime that shut down (last connection closed) from the same options, so the same buffer.
 */
export function installTemporalRuntime(log: Logger, level: LogLevel): MetricsBuffer | undefined {
  if (Runtime.instantiator === undefined) {
    Runtime.install({
      logger: sdkLogger(log.child({ component: 'temporal' })),
      telemetryOptions: {
        // The core's own crates at our level; its dependencies (tonic, hyper...) only when they warn.
        logging: { filter: { core: CORE_LEVEL[level], other: 'WARN' }, forward: {} },
        // Seconds, like every other duration on /metrics. Drained at each scrape and every few seconds.
        metrics: { buffer: new MetricsBuffer({ useSecondsForDurations: true, maxBufferSize: 100_000 }) },
      },
    });
  } else if (Runtime.instantiator === 'instance') {
    log.warn(
      'the Temporal runtime was created before TaskFlow installed it: its logs keep their own format, its metrics are not on /metrics',
    );
  }
  const metrics = Runtime.defaultOptions.telemetryOptions?.metrics;
  return metrics && 'buffer' in metrics ? metrics.buffer : undefined;
}
