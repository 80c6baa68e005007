/**
 * TaskFlow's one database: a `pg` pool on DATABASE_URL, transactions, and the line between a database
 * that is down (an ordinary fault: 503 at the API, a retried activity) and everything else.
 */
import pg from 'pg';
import type { Logger } from '../logger';
import { isDatabaseUnavailable, untilDatabaseAnswers } from './faults';
import { withClient } from './client';
import { migrate } from './migrate';

export { isDatabaseUnavailable, untilDatabaseAnswers, withClient };

export type Queryable = Pick<pg.PoolClient, 'query'>;

export interface DatabaseConfig {
  url: string;
  poolMax: number;
  /** Bound on waiting for a connection and on one statement: a database that hangs is a database that is down. */
  timeoutMs: number;
}

export interface Database {
  pool: pg.Pool;
  /** Runs `fn` in one transaction (READ COMMITTED); rolled back when it throws. */
  tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T>;
  /** True when a trivial query answers in time. */
  healthy(): Promise<boolean>;
  close(): Promise<void>;
}

// bigint (sums, counts) as numbers: TaskFlow's counts and byte totals stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

/** How long a starting process waits for the database before it gives up. */
const STARTUP_WAIT_MS = 60_000;

export async function openDatabase(config: DatabaseConfig, log: Logger): Promise<Database> {
  const pool = new pg.Pool({
    connectionString: config.url,
    max: config.poolMax,
    connectionTimeoutMillis: config.timeoutMs,
    statement_timeout: config.timeoutMs,
    idleTimeoutMillis: 30_000,
    // Idle connections do not keep a process alive that has nothing else to do (a CLI, a finished test).
    allowExitOnIdle: true,
    application_name: 'taskflow',
  });
  // An idle client whose server went away emits here; without a listener it would end the process.
  pool.on('error', (err) => log.warn('an idle database connection failed', { error: err }));
  const db: Database = {
    pool,
    async tx(fn) {
      return withClient(pool, async (c) => {
        await c.query('BEGIN');
        try {
          const out = await fn(c);
          await c.query('COMMIT');
          return out;
        } catch (err) {
          await c.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      });
    },
    async healthy() {
      try {
        await pool.query('SELECT 1');
        return true;
      } catch {
        return false;
      }
    },
    close: () => pool.end(),
  };
  try {
    // A database that is not up yet (a cluster starting, a restart) is waited for, not a failed start.
    await untilDatabaseAnswers(
      () => migrate(pool, log),
      undefined,
      STARTUP_WAIT_MS,
      (err) => log.warn('the database does not answer yet; waiting', { error: (err as Error).message }),
    );
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  return db;
}
