/** Storage on its own: safe writes, owner-scoped paths, idempotent promotion and quarantine. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '../src/config';
import { openStorage, StagedFileError, VersionUnavailableError, type Storage, type ValidationRecord } from '../src/storage';
import type { ValidationStatus } from '../domain/validation';

let config: Config;
let storage: Storage;
let n = 0;

beforeEach(async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-storage-'));
  config = loadConfig({ DATA_DIR: path.join(root, 'data'), TASKS_DIR: path.join(root, 'tasks'), QUARANTINE_DIR: path.join(root, 'q') });
  storage = await openStorage(config);
});

/** Stages `source` and writes its record and pointer the way the API does. */
async function uploaded(owner: string, name: string, source: string): Promise<{ rec: ValidationRecord; final: ValidationStatus }> {
  const staged = await storage.files.stage(Buffer.from(source));
  const id = (++n).toString(16).padStart(32, '0');
  const rec: ValidationRecord = {
    validation_id: id,
    owner,
    file_name: name,
    sha256: staged.sha256,
    size: staged.size,
    staged_name: staged.stagedName,
    created_at: new Date().toISOString(),
    workflow_id: `validation-${id}`,
    workflow_started: true,
  };
  await storage.records.create(rec);
  await storage.records.setPointer(owner, name, { validation_id: id, uploaded_at: rec.created_at });
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

test('staging: fresh random names, 0600, never overwrites', async () => {
  const a = await storage.files.stage(Buffer.from('x = 1\n'));
  const b = await storage.files.stage(Buffer.from('x = 1\n'));
  expect(a.stagedName).not.toBe(b.stagedName);
  expect(a.stagedName).toMatch(/^[0-9a-f]{32}\.upload$/);
  expect(fs.statSync(path.join(config.stagingDir, a.stagedName)).mode & 0o777).toBe(0o600);
  expect(a.sha256).toBe(b.sha256);
});

test('a staged file replaced by a symlink or changed is refused, never followed', async () => {
  const { rec } = await uploaded('alice', 'plant', 'def handler(p):\n    return p\n');
  const staged = path.join(config.stagingDir, rec.staged_name);
  fs.unlinkSync(staged);
  fs.symlinkSync('/etc/hostname', staged);
  await expect(storage.files.readStaged(rec.staged_name, rec.sha256)).rejects.toBeInstanceOf(StagedFileError);
  fs.unlinkSync(staged);
  fs.writeFileSync(staged, 'def handler(p):\n    return "changed"\n');
  await expect(storage.files.readStaged(rec.staged_name, rec.sha256)).rejects.toMatchObject({ kind: 'mismatch' });
  fs.unlinkSync(staged);
  await expect(storage.files.readStaged(rec.staged_name, rec.sha256)).rejects.toMatchObject({ kind: 'missing' });
});

test('promotion is idempotent: a retry after a crash at any step ends in the same state', async () => {
  const source = 'def handler(p):\n    return 1\n';
  const { rec, final } = await uploaded('alice', 'idem', source);
  const done = await storage.files.promote(rec.validation_id, final);
  expect(done).toMatchObject({ status: 'VALIDATED', promoted: true });
  // Crash before the record was updated: the record lost its final, staging is already gone.
  await storage.records.update(rec.validation_id, ({ final: _f, ...r }) => r);
  expect(fs.existsSync(path.join(config.stagingDir, rec.staged_name))).toBe(false);
  const again = await storage.files.promote(rec.validation_id, final);
  expect(again).toEqual(done);
  // And a plain retry after everything went through returns the recorded result.
  expect(await storage.files.promote(rec.validation_id, { ...final, finished_at: 'later' })).toEqual(done);
  const dir = path.join(config.tasksDir, 'alice');
  expect(fs.readdirSync(dir).sort()).toEqual(['.versions', 'idem.json', 'idem.py']);
  expect(fs.readdirSync(path.join(dir, '.versions'))).toEqual([`${rec.sha256}.py`]);
  expect(fs.readFileSync(path.join(dir, 'idem.py'), 'utf8')).toBe(source);
});

test('promotion replaces a planted symlink instead of writing through it', async () => {
  const victim = path.join(os.tmpdir(), `taskflow-victim-${process.pid}`);
  fs.writeFileSync(victim, 'precious\n');
  const { rec, final } = await uploaded('alice', 'sym', 'def handler(p):\n    return 2\n');
  fs.mkdirSync(path.join(config.tasksDir, 'alice'), { recursive: true });
  fs.symlinkSync(victim, path.join(config.tasksDir, 'alice', 'sym.py'));
  await storage.files.promote(rec.validation_id, final);
  expect(fs.readFileSync(victim, 'utf8')).toBe('precious\n');
  expect(fs.lstatSync(path.join(config.tasksDir, 'alice', 'sym.py')).isFile()).toBe(true);
  fs.unlinkSync(victim);
});

test('an owner directory that is a symlink is refused', async () => {
  const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-elsewhere-'));
  fs.symlinkSync(elsewhere, path.join(config.tasksDir, 'mallory'));
  const { rec, final } = await uploaded('mallory', 'x', 'def handler(p):\n    return 3\n');
  await expect(storage.files.promote(rec.validation_id, final)).rejects.toThrow(/not a directory/);
  expect(fs.readdirSync(elsewhere)).toEqual([]);
});

test('quarantine keeps the file and its report, never touches TASKS_DIR, and is idempotent', async () => {
  const source = 'import subprocess\n';
  const { rec, final } = await uploaded('alice', 'bad', source);
  const rejected: ValidationStatus = {
    ...final,
    status: 'REJECTED',
    findings: [{ code: 'forbidden_import', severity: 'error', message: 'no' }],
  };
  await storage.files.quarantine(rec.validation_id, rejected);
  await storage.records.update(rec.validation_id, ({ final: _f, ...r }) => r); // crash before the record
  expect(await storage.files.quarantine(rec.validation_id, rejected)).toEqual(rejected);
  expect(fs.readFileSync(path.join(config.quarantineDir, `${rec.validation_id}.py`), 'utf8')).toBe(source);
  expect(JSON.parse(fs.readFileSync(path.join(config.quarantineDir, `${rec.validation_id}.json`), 'utf8'))).toMatchObject({
    status: 'REJECTED',
  });
  expect(fs.readdirSync(config.tasksDir)).toEqual([]);
});

test('versions are verified when loaded', async () => {
  const { rec, final } = await uploaded('alice', 'ver', 'def handler(p):\n    return 4\n');
  await storage.files.promote(rec.validation_id, final);
  const file = path.join(config.tasksDir, 'alice', '.versions', `${rec.sha256}.py`);
  fs.chmodSync(file, 0o600);
  fs.writeFileSync(file, 'def handler(p):\n    return "tampered"\n');
  await expect(storage.files.loadVersion('alice', 'ver', rec.sha256)).rejects.toBeInstanceOf(VersionUnavailableError);
  await expect(storage.files.loadVersion('alice', 'ver', 'f'.repeat(64))).rejects.toThrow(/gone/);
});

test('paths are built from checked identifiers only', () => {
  const { layout } = storage;
  expect(() => layout.promoted('../bob', 'x')).toThrow(/invalid owner/);
  expect(() => layout.promoted('alice', '../x')).toThrow(/invalid file name/);
  expect(() => layout.promoted('alice', 'class')).toThrow(/invalid file name/);
  expect(() => layout.version('alice', '../../etc/passwd')).toThrow(/invalid sha256/);
  expect(() => layout.staged('../../x.upload')).toThrow(/invalid staged name/);
  expect(() => layout.validationRecord('x/../y')).toThrow(/invalid validation id/);
  expect(layout.promoted('alice', 'ok_name')).toBe(path.join(config.tasksDir, 'alice', 'ok_name.py'));
});
