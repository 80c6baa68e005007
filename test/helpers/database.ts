/**
 * Databases for the suites: scripts/test.sh starts one throwaway PostgreSQL for the run
 * (TASKFLOW_TEST_PG_URL names its maintenance database) and every call here makes a fresh, empty
 * database on it, so suites (and the processes a suite starts) never see each other's rows.
 */
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function testServerUrl(): string {
  const url = process.env.TASKFLOW_TEST_PG_URL;
  if (!url) {
    throw new Error('TASKFLOW_TEST_PG_URL is not set: run the suites through `bash scripts/test.sh`, which starts the test PostgreSQL');
  }
  return url;
}

/** The URL of a new empty database on the test server (synchronous: suite environments are built synchronously). */
export function newTestDatabase(): string {
  const server = new URL(testServerUrl());
  const name = `taskflow_test_${crypto.randomBytes(6).toString('hex')}`;
  execFileSync('psql', [server.toString(), '-Xqc', `CREATE DATABASE ${name}`], { stdio: ['ignore', 'ignore', 'inherit'] });
  server.pathname = `/${name}`;
  return server.toString();
}

export interface PostgresServer {
  pid: number;
  /** A database on it, made on start. */
  url: string;
  /** SIGKILL of the postmaster (no clean shutdown at all); resolves once it is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same data directory (crash recovery), same port. */
  restart(): Promise<void>;
  /** A fast shutdown, then its directory removed. */
  stop(): Promise<void>;
}

const ROOT = path.resolve(__dirname, '..', '..');
/** Alive and not a zombie (a daemon's parent may never reap it). */
const alive = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
};

async function gone(pid: number): Promise<void> {
  for (let i = 0; i < 300 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
}

/** A PostgreSQL server of a test's own (scripts/lib.sh start_postgres), for tests that kill it. */
export async function startPostgresServer(port: number): Promise<PostgresServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-test-pg-'));
  const start = () =>
    Number(
      execFileSync('bash', ['-c', `source scripts/lib.sh && start_postgres "$0" "$1" fsync=off`, dir, String(port)], {
        cwd: ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      }).trim(),
    );
  let pid = start();
  const admin = `postgresql://taskflow@127.0.0.1:${port}/postgres`;
  execFileSync('psql', [admin, '-Xqc', 'CREATE DATABASE taskflow'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const server: PostgresServer = {
    get pid() {
      return pid;
    },
    url: `postgresql://taskflow@127.0.0.1:${port}/taskflow`,
    async kill() {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
      await gone(pid);
    },
    async restart() {
      // Its old backends notice the postmaster's death and end; until they have, a start finds the shared memory in use.
      for (let attempt = 1; ; attempt++) {
        try {
          pid = start();
          return;
        } catch (err) {
          if (attempt >= 50) throw err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    },
    async stop() {
      if (alive(pid)) process.kill(pid, 'SIGINT');
      await gone(pid);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}
