/**
 * Structured logs through pino: one JSON object per line on stderr (stdout stays free for CLI output),
 * `{"level":"info","time":"<ISO>", ...base, ...fields, "msg"}`. The Temporal SDK's own lines take the same
 * path (app/temporal-runtime.ts), so every line a process prints parses the same way.
 */
import pino from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

/** What the code logs through; sandbox/'s SandboxLogger is the same shape, so a Logger serves both. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

function wrap(p: pino.Logger): Logger {
  return {
    debug: (msg, fields) => p.debug(fields ?? {}, msg),
    info: (msg, fields) => p.info(fields ?? {}, msg),
    warn: (msg, fields) => p.warn(fields ?? {}, msg),
    error: (msg, fields) => p.error(fields ?? {}, msg),
    child: (fields) => wrap(p.child(fields)),
  };
}

/**
 * `destination` defaults to stderr, written synchronously so nothing is lost when the process exits right
 * after logging (start-up failures). Errors under `error` or `err` keep their type, message, stack and cause.
 */
export function createLogger(
  level: LogLevel = 'info',
  base: LogFields = {},
  destination: pino.DestinationStream = pino.destination({ dest: 2, sync: true }),
): Logger {
  const p = pino(
    {
      level,
      base,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { error: pino.stdSerializers.err, err: pino.stdSerializers.err },
    },
    destination,
  );
  return wrap(p);
}

/** For tests and library use where logs are noise. */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};
