/**
 * The task files' bytes and their life: read for validation, promoted to a version (or quarantined),
 * deleted by name, and fetched by the task workers. The database holds every byte; a worker host keeps
 * only a read-only cache of the versions it ran (TASKS_DIR/<owner>/<sha256>.py), checked against the
 * sha256 on every read, so deleting the cache or the whole host loses nothing.
 */
import path from 'node:path';
import { sha256Hex } from '../../sandbox/hash';
import type { SandboxRunReport, ValidationFinding, ValidationStatus } from '../../domain/validation';
import { OWNER_RE, SHA256_RE } from '../../domain/names';
import type { Database } from '../db';
import { ensureDir, readIfExists, writeAtomic } from './fs-safe';
import { mustMatch } from './ids';
import { clipStatus } from './records';

export { sha256Hex };

/** The uploaded bytes are gone or no longer what was uploaded. Not worth retrying. */
export class UploadBytesError extends Error {
  constructor(
    readonly kind: 'missing' | 'mismatch',
    message: string,
  ) {
    super(message);
    this.name = 'UploadBytesError';
  }
}

/** A pinned version is gone or its bytes no longer match its sha256. Not worth retrying. */
export class VersionUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VersionUnavailableError';
  }
}

export interface PromotionRecord {
  sha256: string;
  validation_id: string;
  promoted_at: string;
}

export type DeleteOutcome =
  { kind: 'pending'; validation_id: string } | { kind: 'nothing' } | { kind: 'deleted'; sha256: string; validation_id: string };

export class TaskFiles {
  constructor(
    private readonly db: Database,
    /** This host's cache of versions (TASKS_DIR). */
    private readonly cacheDir: string,
  ) {}

  async init(): Promise<void> {
    await ensureDir(this.cacheDir);
  }

  /** An upload's bytes by sha256, verified: what the validation activities check and run. */
  async uploadBytes(sha256: string): Promise<Buffer> {
    const { rows } = await this.db.pool.query<{ bytes: Buffer }>('SELECT bytes FROM blobs WHERE sha256 = $1', [sha256]);
    const bytes = rows[0]?.bytes;
    if (!bytes) throw new UploadBytesError('missing', 'the uploaded file is gone');
    if (sha256Hex(bytes) !== sha256) throw new UploadBytesError('mismatch', 'the uploaded file no longer matches its sha256');
    return bytes;
  }

  private cachePath(owner: string, sha256: string): string {
    return path.join(this.cacheDir, mustMatch(OWNER_RE, owner, 'owner'), `${mustMatch(SHA256_RE, sha256, 'sha256')}.py`);
  }

  /**
   * A validated version of `owner` by sha256, verified: from this host's cache, else from the database
   * (then cached, read-only). Only the owner's own versions: another owner's sha256 is "gone".
   */
  async loadVersion(owner: string, _title: string, sha256: string): Promise<string> {
    const file = this.cachePath(owner, sha256);
    const cached = await readIfExists(file).catch(() => undefined);
    if (cached && sha256Hex(cached) === sha256) return cached.toString('utf8');
    const { rows } = await this.db.pool.query<{ bytes: Buffer }>(
      'SELECT b.bytes FROM versions v JOIN blobs b USING (sha256) WHERE v.owner = $1 AND v.sha256 = $2',
      [owner, sha256],
    );
    const bytes = rows[0]?.bytes;
    if (!bytes) throw new VersionUnavailableError(`version ${sha256.slice(0, 12)} is gone`);
    if (sha256Hex(bytes) !== sha256) throw new VersionUnavailableError(`version ${sha256.slice(0, 12)} no longer matches its sha256`);
    await this.cache(owner, sha256, bytes);
    return bytes.toString('utf8');
  }

  /** Best effort: a cache that cannot be written costs a database read next time, nothing more. */
  private async cache(owner: string, sha256: string, bytes: Buffer): Promise<void> {
    const file = this.cachePath(owner, sha256);
    await ensureDir(path.dirname(file))
      .then(() => writeAtomic(file, bytes, 0o400))
      .catch(() => undefined);
  }

  /**
   * Marks a version as just used: the retention sweep never removes a version used in its last few
   * minutes, so a task created a moment ago (not yet visible as pinned) keeps its version.
   */
  async touchVersion(owner: string, sha256: string): Promise<void> {
    await this.db.pool.query('UPDATE versions SET last_used_at = now() WHERE owner = $1 AND sha256 = $2', [owner, sha256]);
  }

  async promotion(owner: string, name: string): Promise<PromotionRecord | undefined> {
    const { rows } = await this.db.pool.query<{ promoted_sha256: string; promoted_validation_id: string; promoted_at: Date }>(
      `SELECT promoted_sha256, promoted_validation_id, promoted_at FROM task_files
       WHERE owner = $1 AND file_name = $2 AND promoted_sha256 IS NOT NULL`,
      [owner, name],
    );
    const p = rows[0];
    return p && { sha256: p.promoted_sha256, validation_id: p.promoted_validation_id, promoted_at: p.promoted_at.toISOString() };
  }

  /**
   * VALIDATED, in one transaction: keep the version, make it the name's promoted file if this is still
   * the name's last upload, write the final status. Idempotent: a retry after a crash finds the final
   * status written and returns it.
   */
  async promote(id: string, final: ValidationStatus, report?: SandboxRunReport): Promise<ValidationStatus> {
    const done = await this.db.tx(async (c) => {
      const { rows } = await c.query<{
        owner: string;
        file_name: string;
        sha256: string;
        blob_sha256: string | null;
        final: ValidationStatus | null;
      }>('SELECT owner, file_name, sha256, blob_sha256, final FROM validations WHERE validation_id = $1 FOR UPDATE', [id]);
      const rec = rows[0];
      if (!rec) throw new Error(`validation record ${id} is missing`);
      if (rec.final) return { status: rec.final, rec };
      const { rowCount: kept } = await c.query(
        `INSERT INTO versions (owner, sha256, validation_id) SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM blobs WHERE sha256 = $2)
         ON CONFLICT (owner, sha256) DO UPDATE SET last_used_at = now()`,
        [rec.owner, rec.sha256, id],
      );
      if (!kept) throw new UploadBytesError('missing', 'the uploaded file is gone');
      const { rows: names } = await c.query<{ current_validation_id: string | null }>(
        'SELECT current_validation_id FROM task_files WHERE owner = $1 AND file_name = $2 FOR UPDATE',
        [rec.owner, rec.file_name],
      );
      const latest = names[0]?.current_validation_id === id;
      const findings: ValidationFinding[] = [...final.findings];
      if (latest) {
        await c.query(
          `UPDATE task_files SET promoted_sha256 = $3, promoted_validation_id = $4, promoted_at = now() WHERE owner = $1 AND file_name = $2`,
          [rec.owner, rec.file_name, rec.sha256, id],
        );
      } else {
        findings.push({
          code: 'superseded',
          severity: 'warning',
          message: `a newer upload (or a deletion) of ${rec.file_name} came after this one: this version passed but was not promoted`,
        });
      }
      const status = clipStatus({ ...final, findings, promoted: latest });
      // The version holds the bytes from now on.
      await c.query('UPDATE validations SET final = $2, report = $3, finished_at = now(), blob_sha256 = NULL WHERE validation_id = $1', [
        id,
        JSON.stringify(status),
        report ? JSON.stringify(report) : null,
      ]);
      return { status, rec };
    });
    // This host will likely run it next: warm its cache (the database is the truth either way).
    if (done.status.status === 'VALIDATED') {
      const bytes = await this.uploadBytes(done.rec.sha256).catch(() => undefined);
      if (bytes) await this.cache(done.rec.owner, done.rec.sha256, bytes);
    }
    return done.status;
  }

  /** REJECTED: the final status and report; the bytes stay (quarantine) until RETENTION_QUARANTINE_DAYS. Idempotent. */
  async quarantine(id: string, final: ValidationStatus, report?: SandboxRunReport): Promise<ValidationStatus> {
    const status = clipStatus(final);
    const { rows } = await this.db.pool.query<{ final: ValidationStatus }>(
      `WITH done AS (
         UPDATE validations SET final = $2, report = $3, finished_at = now() WHERE validation_id = $1 AND final IS NULL RETURNING final)
       SELECT final FROM done UNION ALL SELECT final FROM validations WHERE validation_id = $1 AND final IS NOT NULL`,
      [id, JSON.stringify(status), report ? JSON.stringify(report) : null],
    );
    if (!rows[0]) throw new Error(`validation record ${id} is missing`);
    return rows[0].final;
  }

  /**
   * Removes the name's promoted file, serialized with uploads and promotions of the name by its row
   * lock: refused while the name's last upload is still validating (the upload wins). Versions stay:
   * tasks pinned to them still run.
   */
  async deleteName(owner: string, name: string): Promise<DeleteOutcome> {
    return this.db.tx(async (c) => {
      // The row lock first, alone: a join here would be re-checked against the other table's old row
      // after waiting for an upload's commit, and miss that upload. The next statement sees it.
      const { rows } = await c.query<{
        current_validation_id: string | null;
        promoted_sha256: string | null;
        promoted_validation_id: string | null;
      }>(
        'SELECT current_validation_id, promoted_sha256, promoted_validation_id FROM task_files WHERE owner = $1 AND file_name = $2 FOR UPDATE',
        [owner, name],
      );
      const row = rows[0];
      if (row?.current_validation_id) {
        const { rowCount } = await c.query('SELECT 1 FROM validations WHERE validation_id = $1 AND final IS NULL', [
          row.current_validation_id,
        ]);
        if (rowCount) return { kind: 'pending', validation_id: row.current_validation_id };
      }
      if (!row?.promoted_sha256 || !row.promoted_validation_id) return { kind: 'nothing' };
      await c.query(
        `UPDATE task_files SET current_validation_id = NULL, deleted_at = now(), deleted_validation_id = promoted_validation_id,
           promoted_sha256 = NULL, promoted_validation_id = NULL, promoted_at = NULL WHERE owner = $1 AND file_name = $2`,
        [owner, name],
      );
      return { kind: 'deleted', sha256: row.promoted_sha256, validation_id: row.promoted_validation_id };
    });
  }
}
