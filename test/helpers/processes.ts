/**
 * Real processes for crash tests and benchmarks: a Temporal dev server on a SQLite file and TaskFlow
 * roles (app/main.ts), each started, waited for, SIGKILLed and restarted by pid. Nothing here kills
 * by name: only the children it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { SEARCH_ATTRIBUTES } from '../../domain/search-attributes';
import type { Role } from '../../src/config';
import { devServerArgs, temporalCliPath } from './temporal';

const ROOT = path.resolve(__dirname, '..', '..');

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export interface Child {
  child: ChildProcess;
  pid: number;
  exited: Promise<number | null>;
  /** The tail of what it wrote to stderr. */
  log(): string;
  /** SIGKILL (no clean-up at all), resolves once it is gone. */
  kill(): Promise<void>;
  /** SIGTERM (a graceful stop), resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Keeps the tail of its stderr; `kill` and `stop` resolve once it is gone. */
export function track(child: ChildProcess): Child {
  let tail = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-200_000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    pid: child.pid!,
    exited,
    log: () => tail,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** `temporal server start-dev` on 127.0.0.1:`port` keeping its state in `dbFile`; resolves once it answers. */
export async function startDevServer(port: number, dbFile: string): Promise<Child> {
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--headless',
    '--db-filename',
    dbFile,
    '--log-level',
    'error',
  ];
  for (const k of SEARCH_ATTRIBUTES) args.push('--search-attribute', `${k.name}=${TypedSearchAttributes.toMetadataType(k.type)}`);
  args.push(...devServerArgs({ dbFile: true }));
  const server = track(spawn(temporalCliPath(), args, { stdio: ['ignore', 'ignore', 'pipe'] }));
  const deadline = Date.now() + 60000;
  for (;;) {
    const conn = await Connection.connect({ address: `127.0.0.1:${port}`, connectTimeout: 1000 }).catch(() => undefined);
    const ok = conn
      ? await conn.healthService.check({}).then(
          () => true,
          () => false,
        )
      : false;
    await conn?.close();
    if (ok) return server;
    if (server.child.exitCode !== null) throw new Error(`temporal dev server exited: ${server.log().slice(-2000)}`);
    if (Date.now() > deadline) {
      await server.kill();
      throw new Error('temporal dev server did not answer within 60 s');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** What each role logs once it is serving (app/main.ts, app/task-worker.ts). */
const READY: Record<Role, string> = {
  api: '"msg":"API listening"',
  'validation-worker': '"msg":"validation worker polling"',
  'task-worker': '"msg":"task workers polling"',
};

/** Starts app/main.ts with one role and resolves once that role serves. `env` is the whole app environment. */
export function startRole(role: Role, env: Record<string, string>, timeoutMs = 120000): Promise<Child> {
  return startApp({ env: { ...env, TASKFLOW_ROLES: role }, ready: READY[role], timeoutMs, what: role });
}

export interface AppOptions {
  /** Where it runs (default: this checkout) and what (default: app/main.ts through ts-node). */
  cwd?: string;
  command?: string[];
  env: Record<string, string>;
  /** A line fragment it logs once it serves. */
  ready: string;
  timeoutMs?: number;
  what?: string;
}

/** Starts a TaskFlow process and resolves once it logged `ready`. */
export async function startApp(o: AppOptions): Promise<Child> {
  const [command, ...args] = o.command ?? [path.join(ROOT, 'node_modules/.bin/ts-node'), '--transpile-only', 'app/main.ts'];
  const cwd = o.cwd ?? ROOT;
  const what = o.what ?? o.env.TASKFLOW_ROLES ?? 'taskflow';
  const timeoutMs = o.timeoutMs ?? 120000;
  const proc = track(
    spawn(path.resolve(cwd, command), args, {
      cwd,
      env: { ...process.env, ...o.env, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'ignore', 'pipe'],
    }),
  );
  const deadline = Date.now() + timeoutMs;
  while (!proc.log().includes(o.ready)) {
    if (proc.child.exitCode !== null)
      throw new Error(`${what} exited (${proc.child.exitCode}) during start-up:\n${proc.log().slice(-3000)}`);
    if (Date.now() > deadline) {
      await proc.kill();
      throw new Error(`${what} did not start within ${timeoutMs} ms:\n${proc.log().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return proc;
}
