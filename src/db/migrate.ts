/**
 * Versioned schema migrations: the numbered SQL files in ./migrations, each applied once, in order,
 * in its own transaction, under an advisory lock so that replicas starting together apply each once.
 * A database migrated by a newer TaskFlow refuses an older binary (it would misread the schema).
 */
import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import type { Logger } from '../logger';
import { withClient } from './client';

const MIGRATIONS_DIR = path.join(__dirname, 'migrations');
/** Any constant: the key of the session advisory lock held while migrating. */
const MIGRATION_LOCK_KEY = 0x7461736b; // "task"

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function migrations(dir = MIGRATIONS_DIR): Migration[] {
  return fs
    .readdirSync(dir)
    .flatMap((file) => {
      const m = /^(\d{3})_([a-z0-9_]+)\.sql$/.exec(file);
      return m ? [{ version: Number(m[1]), name: m[2], sql: fs.readFileSync(path.join(dir, file), 'utf8') }] : [];
    })
    .sort((a, b) => a.version - b.version);
}

export class SchemaTooNewError extends Error {
  constructor(found: number, known: number) {
    super(
      `the database's schema is at version ${found}, newer than this TaskFlow knows (${known}): ` +
        'it was migrated by a newer release; run that release (or newer), never an older one, against it',
    );
    this.name = 'SchemaTooNewError';
  }
}

export async function migrate(pool: pg.Pool, log: Logger, known: Migration[] = migrations()): Promise<number> {
  return withClient(pool, async (c) => {
    await c.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      return await applyMissing(c, log, known);
    } finally {
      await c.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    }
  });
}

async function applyMissing(c: pg.PoolClient, log: Logger, known: Migration[]): Promise<number> {
  await c.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
  const { rows } = await c.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
  const applied = new Set(rows.map((r) => r.version));
  const newest = known.at(-1)?.version ?? 0;
  const found = rows.at(-1)?.version ?? 0;
  if (found > newest) throw new SchemaTooNewError(found, newest);
  for (const m of known) {
    if (applied.has(m.version)) continue;
    await c.query('BEGIN');
    try {
      await c.query(m.sql);
      await c.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw new Error(`migration ${m.version}_${m.name} failed: ${(err as Error).message}`);
    }
    log.info('database migration applied', { version: m.version, name: m.name });
  }
  return newest;
}
