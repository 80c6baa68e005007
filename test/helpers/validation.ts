/** Shared pieces of the validation suites: a config in fresh temp dirs, the app, upload and polling helpers. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import request from 'supertest';
import type { Express } from 'express';
import { createApp } from '../../src/api/app';
import type { Config } from '../../src/config';
import { silentLogger, type Logger } from '../../src/logger';
import { openStorage, type Storage } from '../../src/storage';
import { tasksNotEnabled, type TaskCreateRequest, type TaskService } from '../../src/tasks/task-service';
import { ValidationService } from '../../src/validation/service';
import type { SandboxRunReport, ValidationStatus } from '../../domain/validation';
import { newTestDatabase } from './database';
import { UV_PATH } from './package-index';
import { testConfig } from './sandbox';

export const ALICE = 'alice-token-0123456789abcdef';
export const BOB = 'bob-token-0123456789abcdef';

/**
 * The environment of a suite: a fresh database, every directory a fresh temp dir, its own task queue, two owners,
 * small timeouts. Child processes (app/main.ts) get the same variables, so they agree with the suite.
 */
export function suiteEnv(address: string, env: Record<string, string> = {}): Record<string, string> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-test-'));
  return {
    DATABASE_URL: newTestDatabase(),
    DATA_DIR: path.join(root, 'data'),
    TASKS_DIR: path.join(root, 'tasks'),
    TEMPORAL_ADDRESS: address,
    TASK_VALIDATION_QUEUE_NAME: `validation-test-${path.basename(root)}`,
    TASKFLOW_API_KEYS: `alice:${ALICE},bob:${BOB}`,
    SANDBOX_PAYLOAD_TIMEOUT_MS: '2500',
    SANDBOX_TOTAL_TIMEOUT_MS: '20000',
    SANDBOX_MEMORY_MIB: '128',
    SANDBOX_POOL_SIZE: '1',
    VALIDATION_HEARTBEAT_TIMEOUT_MS: '2000',
    VALIDATION_MAX_ATTEMPTS: '3',
    TEMPORAL_CALL_TIMEOUT_MS: '2000',
    LOG_LEVEL: 'warn',
    // Suites upload in bursts; test/quotas.test.ts sets the limits it tests.
    QUOTA_UPLOADS_PER_MINUTE: '1000',
    QUOTA_VALIDATIONS_IN_FLIGHT: '1000',
    // The uv setup.sh installed (DATA_DIR above is the suite's own, empty).
    DEPENDENCY_UV_PATH: UV_PATH,
    ...env,
  };
}

export function suiteConfig(address: string, env: Record<string, string> = {}): Config {
  return testConfig(suiteEnv(address, env));
}

/** Records what the API handed over at the task-creation seam (the rest is not needed here). */
export class RecordingTaskService implements TaskService {
  readonly created: TaskCreateRequest[] = [];
  async create(req: TaskCreateRequest) {
    this.created.push(req);
    return { task_id: `t${this.created.length}`, status: 'QUEUED', title: req.title, priority: req.priority, sha256: req.sha256 };
  }
  get = tasksNotEnabled.get;
  list = tasksNotEnabled.list;
  cancel = tasksNotEnabled.cancel;
}

export interface TestApi {
  app: Express;
  validations: ValidationService;
  storage: Storage;
}

/** `tasks`: a TaskService, or how to make one from the API's storage (the real one keeps its rows there). */
export async function buildApi(
  config: Config,
  client: Client,
  tasks: TaskService | ((storage: Storage) => TaskService) = tasksNotEnabled,
  log: Logger = silentLogger,
): Promise<TestApi> {
  const storage = await openStorage(config, log);
  const validations = new ValidationService({ config, storage, client, log });
  const app = createApp({
    config,
    keys: config.apiKeys,
    validations,
    tasks: typeof tasks === 'function' ? tasks(storage) : tasks,
    log,
    temporalHealthy: async () => true,
  });
  return { app, validations, storage };
}

export function upload(app: Express, token: string, fileName: string, source: string | Buffer, testPayloads?: unknown) {
  let req = request(app)
    .post('/tasks/upload_file')
    .query({ file_name: fileName })
    .set('Authorization', `Bearer ${token}`)
    .attach('file', Buffer.isBuffer(source) ? source : Buffer.from(source, 'utf8'), {
      filename: 'upload.py',
      contentType: 'text/x-python',
    });
  if (testPayloads !== undefined) req = req.field('test_payloads', JSON.stringify(testPayloads));
  return req;
}

export async function statusOf(app: Express, token: string, id: string): Promise<ValidationStatus> {
  const res = await request(app).get(`/tasks/validation_status/${id}`).set('Authorization', `Bearer ${token}`);
  if (res.status !== 200) throw new Error(`status ${id}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as ValidationStatus;
}

/** Polls the status route until `done` holds (default: a final status). */
export async function waitForStatus(
  app: Express,
  token: string,
  id: string,
  done: (s: ValidationStatus) => boolean = (s) => s.status === 'VALIDATED' || s.status === 'REJECTED',
  timeoutMs = 60000,
): Promise<ValidationStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await statusOf(app, token, id);
    if (done(s)) return s;
    if (Date.now() > deadline) throw new Error(`validation ${id} still ${s.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** Every file and symlink under `dir`, relative, sorted (missing dir → []). */
export function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

const TABLES = ['owners', 'blobs', 'validations', 'task_files', 'versions', 'tasks', 'rate_events'];

/** Everything a suite's TaskFlow keeps: its directories and every row of its database (to show "nothing written"). */
export async function stored(config: Config, storage: Storage): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = { data: tree(config.dataDir), tasks: tree(config.tasksDir) };
  for (const table of TABLES) {
    const { rows } = await storage.db.pool.query(`SELECT * FROM ${table}`);
    out[table] = rows.map((r) => JSON.stringify(r)).sort();
  }
  return out;
}

/** The source of the name's promoted file, as a worker reads it (database, verified), or undefined when none is promoted. */
export async function promotedSource(storage: Storage, owner: string, name: string): Promise<string | undefined> {
  const p = await storage.files.promotion(owner, name);
  return p && storage.files.loadVersion(owner, name, p.sha256);
}

/** A rejected upload as kept in quarantine: its bytes (while kept), its final status and its sandbox run report. */
export async function quarantined(
  storage: Storage,
  id: string,
): Promise<{ source?: string; final?: ValidationStatus; report?: SandboxRunReport }> {
  const rec = await storage.records.get(id);
  const { rows } = await storage.db.pool.query<{ bytes: Buffer }>(
    'SELECT b.bytes FROM validations v JOIN blobs b ON b.sha256 = v.blob_sha256 WHERE v.validation_id = $1',
    [id],
  );
  return { source: rows[0]?.bytes.toString('utf8'), final: rec?.final, report: rec?.report };
}
