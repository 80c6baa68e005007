/**
 * Storage on its own, against a real PostgreSQL (a fresh database per test): one transaction per
 * upload, the schema's invariants, idempotent promotion and quarantine, the worker's version cache,
 * delete serialized with uploads, clipped records, migrations.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig, type Config } from '../src/config';
import { isDatabaseUnavailable, openDatabase } from '../src/db';
import { migrate, migrations, SchemaTooNewError } from '../src/db/migrate';
import { silentLogger } from '../src/logger';
import { clipStatus, openStorage, sha256Hex, VersionUnavailableError, type Storage, type ValidationRecord } from '../src/storage';
import type { ValidationFinding, ValidationStatus } from '../domain/validation';
import { newTestDatabase } from './helpers/database';

let config: Config;
let storage: Storage;
let n = 0;

beforeEach(async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-storage-'));
  config = loadConfig({ DATABASE_URL: newTestDatabase(), DATA_DIR: path.join(root, 'data'), TASKS_DIR: path.join(root, 'tasks') });
  storage = await openStorage(config, silentLogger);
});

afterEach(async () => {
  await storage.close();
});

const count = async (sql: string, args: unknown[] = []): Promise<number> =>
  Number((await storage.db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${sql}`, args)).rows[0].n);

/** Writes an upload the way the API does (admission that lets it in). */
async function uploaded(owner: string, name: string, source: string): Promise<{ rec: ValidationRecord; final: ValidationStatus }> {
  const id = (++n).toString(16).padStart(32, '0');
  const bytes = Buffer.from(source);
  const rec = await storage.records.create(
    { validation_id: id, owner, file_name: name, bytes, sha256: sha256Hex(bytes), workflow_id: `validation-${id}` },
    async () => undefined,
  );
  const final: ValidationStatus = {
    validation_id: id,
    file_name: name,
    owner,
    sha256: rec.sha256,
    status: 'VALIDATED',
    findings: [],
    metrics: { size_bytes: rec.size },
    created_at: rec.created_at,
    finished_at: new Date().toISOString(),
  };
  return { rec, final };
}

test('an upload is one transaction: bytes, record and pointer together, or nothing when admission refuses', async () => {
  const { rec } = await uploaded('alice', 'one', 'def handler(p):\n    return 1\n');
  expect(rec).toMatchObject({ owner: 'alice', file_name: 'one', size: 29, workflow_started: false });
  expect(await storage.records.pointer('alice', 'one')).toMatchObject({ validation_id: rec.validation_id });
  expect(await storage.files.uploadBytes(rec.sha256)).toEqual(Buffer.from('def handler(p):\n    return 1\n'));
  expect((await storage.records.pendingStarts()).map((r) => r.validation_id)).toEqual([rec.validation_id]);

  const bytes = Buffer.from('def handler(p):\n    return 2\n');
  const refused = storage.records.create(
    { validation_id: 'f'.repeat(32), owner: 'carol', file_name: 'two', bytes, sha256: sha256Hex(bytes), workflow_id: 'validation-x' },
    async () => {
      throw new Error('over a quota');
    },
  );
  await expect(refused).rejects.toThrow('over a quota');
  expect(await count('validations WHERE owner = $1', ['carol'])).toBe(0);
  expect(await count('blobs WHERE sha256 = $1', [sha256Hex(bytes)])).toBe(0);
  expect(await count('task_files WHERE owner = $1', ['carol'])).toBe(0);
  expect(await count('owners WHERE owner = $1', ['carol'])).toBe(0);
});

test('the schema refuses what must never be: bytes that do not match their sha256, a final status rewritten, an unknown owner', async () => {
  await expect(
    storage.db.pool.query('INSERT INTO blobs (sha256, bytes) VALUES ($1, $2)', [sha256Hex(Buffer.from('a')), Buffer.from('b')]),
  ).rejects.toThrow(/blobs_sha256_matches/);
  const { rec, final } = await uploaded('alice', 'once', 'def handler(p):\n    return 1\n');
  await storage.files.promote(rec.validation_id, final);
  await expect(
    storage.db.pool.query(`UPDATE validations SET final = final || '{"status":"REJECTED"}' WHERE validation_id = $1`, [rec.validation_id]),
  ).rejects.toThrow(/written once/);
  await expect(storage.db.pool.query('INSERT INTO task_files (owner, file_name) VALUES ($1, $2)', ['nobody', 'x'])).rejects.toThrow(
    /foreign key/,
  );
});

test('promotion is idempotent: a retry returns the recorded result and changes nothing', async () => {
  const source = 'def handler(p):\n    return 1\n';
  const { rec, final } = await uploaded('alice', 'idem', source);
  const done = await storage.files.promote(rec.validation_id, final);
  expect(done).toMatchObject({ status: 'VALIDATED', promoted: true });
  expect(await storage.files.promote(rec.validation_id, { ...final, finished_at: 'later' })).toEqual(done);
  expect(await storage.files.promotion('alice', 'idem')).toMatchObject({ sha256: rec.sha256, validation_id: rec.validation_id });
  expect((await storage.records.get(rec.validation_id))?.final).toEqual(done);
  // The version holds the bytes now; the upload no longer does.
  expect(await count('validations WHERE blob_sha256 IS NOT NULL')).toBe(0);
  expect(await count('versions WHERE owner = $1', ['alice'])).toBe(1);
});

test('a version that passed after a newer upload of its name is kept but not promoted (superseded)', async () => {
  const first = await uploaded('alice', 'race', 'def handler(p):\n    return 1\n');
  const second = await uploaded('alice', 'race', 'def handler(p):\n    return 2\n');
  const done = await storage.files.promote(first.rec.validation_id, first.final);
  expect(done.promoted).toBe(false);
  expect(done.findings.map((f) => f.code)).toEqual(['superseded']);
  expect(await storage.files.promotion('alice', 'race')).toBeUndefined();
  expect((await storage.files.promote(second.rec.validation_id, second.final)).promoted).toBe(true);
  expect((await storage.files.promotion('alice', 'race'))?.sha256).toBe(second.rec.sha256);
});

test('quarantine keeps the bytes and the report, never makes a version, and is idempotent', async () => {
  const source = 'import subprocess\n';
  const { rec, final } = await uploaded('alice', 'bad', source);
  const rejected: ValidationStatus = {
    ...final,
    status: 'REJECTED',
    findings: [{ code: 'forbidden_import', severity: 'error', message: 'no' }],
  };
  expect(await storage.files.quarantine(rec.validation_id, rejected)).toEqual(rejected);
  expect(await storage.files.quarantine(rec.validation_id, { ...rejected, findings: [] })).toEqual(rejected);
  expect(await storage.files.uploadBytes(rec.sha256)).toEqual(Buffer.from(source));
  expect(await count('versions')).toBe(0);
  expect(await storage.files.promotion('alice', 'bad')).toBeUndefined();
  expect(fs.readdirSync(config.tasksDir)).toEqual([]);
});

test("the worker's cache: read-only, verified, rebuilt when removed or tampered with, never another owner's", async () => {
  const source = 'def handler(p):\n    return 4\n';
  const { rec, final } = await uploaded('alice', 'ver', source);
  await storage.files.promote(rec.validation_id, final);
  const cached = path.join(config.tasksDir, 'alice', `${rec.sha256}.py`);
  expect(fs.readFileSync(cached, 'utf8')).toBe(source);
  expect(fs.statSync(cached).mode & 0o777).toBe(0o400);

  fs.rmSync(config.tasksDir, { recursive: true });
  expect(await storage.files.loadVersion('alice', 'ver', rec.sha256)).toBe(source);
  expect(fs.readFileSync(cached, 'utf8')).toBe(source);

  fs.chmodSync(cached, 0o600);
  fs.writeFileSync(cached, 'def handler(p):\n    return "tampered"\n');
  expect(await storage.files.loadVersion('alice', 'ver', rec.sha256)).toBe(source);
  expect(fs.readFileSync(cached, 'utf8')).toBe(source);

  await expect(storage.files.loadVersion('bob', 'ver', rec.sha256)).rejects.toBeInstanceOf(VersionUnavailableError);
  await expect(storage.files.loadVersion('alice', 'ver', 'f'.repeat(64))).rejects.toThrow(/gone/);
  await expect(storage.files.loadVersion('../bob', 'ver', rec.sha256)).rejects.toThrow(/invalid owner/);
});

test('a cache directory planted as a symlink is never written through', async () => {
  const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-elsewhere-'));
  fs.symlinkSync(elsewhere, path.join(config.tasksDir, 'mallory'));
  const source = 'def handler(p):\n    return 3\n';
  const { rec, final } = await uploaded('mallory', 'x', source);
  await storage.files.promote(rec.validation_id, final);
  expect(await storage.files.loadVersion('mallory', 'x', rec.sha256)).toBe(source);
  expect(fs.readdirSync(elsewhere)).toEqual([]);
});

test('delete is serialized with the upload by the database: refused while it validates, then removes the promoted file', async () => {
  const { rec, final } = await uploaded('alice', 'gone', 'def handler(p):\n    return 5\n');
  expect(await storage.files.deleteName('alice', 'gone')).toEqual({ kind: 'pending', validation_id: rec.validation_id });
  await storage.files.promote(rec.validation_id, final);
  expect(await storage.files.deleteName('alice', 'gone')).toEqual({
    kind: 'deleted',
    sha256: rec.sha256,
    validation_id: rec.validation_id,
  });
  expect(await storage.records.pointer('alice', 'gone')).toMatchObject({ validation_id: null, deleted_validation_id: rec.validation_id });
  expect(await storage.files.deleteName('alice', 'gone')).toEqual({ kind: 'nothing' });
  // The version stays: tasks pinned to it still run.
  expect(await storage.files.loadVersion('alice', 'gone', rec.sha256)).toContain('return 5');

  // An upload and a delete of a promoted name racing on two connections: whichever the database
  // serializes first, the upload wins (its pointer stands, and a delete that saw it was refused).
  for (let i = 0; i < 30; i++) {
    const before = await uploaded('alice', `race${i}`, `def handler(p):\n    return ${i}\n`);
    await storage.files.promote(before.rec.validation_id, before.final);
    const [del, up] = await Promise.all([
      storage.files.deleteName('alice', `race${i}`),
      uploaded('alice', `race${i}`, 'def handler(p):\n    return -1\n'),
    ]);
    expect(await storage.records.pointer('alice', `race${i}`)).toMatchObject({ validation_id: up.rec.validation_id });
    expect([
      { kind: 'deleted', sha256: before.rec.sha256, validation_id: before.rec.validation_id },
      { kind: 'pending', validation_id: up.rec.validation_id },
    ]).toContainEqual(del);
    // ... and it is promoted when it passes.
    expect((await storage.files.promote(up.rec.validation_id, up.final)).promoted).toBe(true);
  }
});

test('a stored status is clipped: long messages cut, findings beyond the bound counted, not kept', () => {
  const long: ValidationFinding = { code: 'syntax_error', severity: 'error', message: 'x'.repeat(100_000), snippet: 'y'.repeat(50_000) };
  const many: ValidationFinding[] = Array.from({ length: 1000 }, (_, i) => ({
    code: 'unused_import',
    severity: 'warning',
    message: `m${i}`,
  }));
  const base: ValidationStatus = {
    validation_id: '0'.repeat(32),
    file_name: 'x',
    owner: 'alice',
    sha256: '0'.repeat(64),
    status: 'REJECTED',
    findings: [long, ...many],
    metrics: { size_bytes: 0 },
    created_at: '',
    finished_at: '',
  };
  const clipped = clipStatus(base);
  expect(JSON.stringify(clipped).length).toBeLessThan(40_000);
  expect(clipped.findings[0].message.length).toBeLessThanOrEqual(2001);
  expect(clipped.findings[0].snippet?.length).toBe(1000);
  expect(clipped.findings.at(-1)).toMatchObject({ code: 'findings_truncated', message: expect.stringMatching(/^801 more findings/) });
});

test('migrations: applied once even by replicas starting together; a newer schema refuses an older binary', async () => {
  const [a, b] = await Promise.all([openDatabase(config.database, silentLogger), openDatabase(config.database, silentLogger)]);
  const known = migrations();
  const { rows } = await a.pool.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
  expect(rows.map((r) => r.version)).toEqual(known.map((m) => m.version));
  await a.pool.query("INSERT INTO schema_migrations (version, name) VALUES (999, 'from_the_future')");
  await expect(migrate(b.pool, silentLogger)).rejects.toBeInstanceOf(SchemaTooNewError);
  await expect(openStorage(config, silentLogger)).rejects.toThrow(/newer than this TaskFlow knows/);
  await Promise.all([a.close(), b.close()]);
});

test('a database that is not there is told apart from other errors', async () => {
  const pool = new pg.Pool({ connectionString: 'postgresql://taskflow@127.0.0.1:1/none', connectionTimeoutMillis: 1000 });
  const err = await pool.query('SELECT 1').catch((e: unknown) => e);
  await pool.end();
  expect(isDatabaseUnavailable(err)).toBe(true);
  const sqlErr = await storage.db.pool.query('SELECT * FROM no_such_table').catch((e: unknown) => e);
  expect(isDatabaseUnavailable(sqlErr)).toBe(false);
});
