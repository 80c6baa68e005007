/**
 * Upload records in PostgreSQL: one row per validation (owner, name, sha256, its final status once
 * decided), one row per owner/name pointing at its last upload, which decides what `POST /tasks/` may
 * use. An upload's record, its bytes and its name's pointer are written in one transaction, before
 * any workflow starts, so nothing is lost when the API, a worker or Temporal stops at a bad moment.
 */
import type pg from 'pg';
import type { SandboxRunReport, ValidationFinding, ValidationStatus } from '../../domain/validation';
import { VALIDATION_ID_RE } from '../../domain/names';
import type { Database, Queryable } from '../db';

export interface ValidationRecord {
  validation_id: string;
  owner: string;
  file_name: string;
  sha256: string;
  size: number;
  created_at: string;
  test_payloads?: unknown[];
  workflow_id: string;
  /** False until Temporal accepted the start (or said it already had it). */
  workflow_started: boolean;
  /** Why the last start attempt failed (the upload answered 503); cleared once started. */
  start_error?: string;
  /** The status at the workflow's end, written once by the promote / quarantine activity. */
  final?: ValidationStatus;
  report?: SandboxRunReport;
}

export type UploadPointer =
  { validation_id: string; uploaded_at: string } | { validation_id: null; deleted_at: string; deleted_validation_id?: string };

export interface NewUpload {
  validation_id: string;
  owner: string;
  file_name: string;
  bytes: Buffer;
  sha256: string;
  test_payloads?: unknown[];
  workflow_id: string;
}

/** What a record keeps of a message or snippet: enough to act on, never a record that grows with the input. */
const MESSAGE_MAX = 2000;
const SNIPPET_MAX = 1000;
const FINDINGS_MAX = 200;

/** The final status as stored: finding messages and snippets clipped, at most FINDINGS_MAX findings. */
export function clipStatus(s: ValidationStatus): ValidationStatus {
  const clip = (f: ValidationFinding): ValidationFinding => ({
    ...f,
    message: f.message.length > MESSAGE_MAX ? `${f.message.slice(0, MESSAGE_MAX)}…` : f.message,
    ...(typeof f.snippet === 'string' ? { snippet: f.snippet.slice(0, SNIPPET_MAX) } : {}),
  });
  const findings = s.findings.slice(0, FINDINGS_MAX).map(clip);
  if (s.findings.length > FINDINGS_MAX) {
    const errors = s.findings.slice(FINDINGS_MAX).filter((f) => f.severity === 'error').length;
    findings.push({
      code: 'findings_truncated',
      severity: 'warning',
      message: `${s.findings.length - FINDINGS_MAX} more findings (${errors} of them errors) are not shown`,
    });
  }
  return { ...s, findings };
}

const iso = (t: Date | null | undefined): string | undefined => (t ? t.toISOString() : undefined);

interface RecordRow {
  validation_id: string;
  owner: string;
  file_name: string;
  sha256: string;
  size: number;
  created_at: Date;
  test_payloads: unknown[] | null;
  workflow_id: string;
  workflow_started: boolean;
  start_error: string | null;
  final: ValidationStatus | null;
  report: SandboxRunReport | null;
}

const RECORD_COLUMNS =
  'validation_id, owner, file_name, sha256, size, created_at, test_payloads, workflow_id, workflow_started, start_error, final, report';

function fromRow(r: RecordRow): ValidationRecord {
  return {
    validation_id: r.validation_id,
    owner: r.owner,
    file_name: r.file_name,
    sha256: r.sha256,
    size: r.size,
    created_at: r.created_at.toISOString(),
    ...(r.test_payloads ? { test_payloads: r.test_payloads } : {}),
    workflow_id: r.workflow_id,
    workflow_started: r.workflow_started,
    ...(r.start_error ? { start_error: r.start_error } : {}),
    ...(r.final ? { final: r.final } : {}),
    ...(r.report ? { report: r.report } : {}),
  };
}

/** Takes the per-owner lock that serializes admission decisions (quotas) across every API replica. */
export async function lockOwner(c: Queryable, owner: string): Promise<void> {
  await c.query('INSERT INTO owners (owner) VALUES ($1) ON CONFLICT DO NOTHING', [owner]);
  await c.query("SELECT pg_advisory_xact_lock(hashtextextended('owner:' || $1, 0))", [owner]);
}

export class RecordStore {
  constructor(private readonly db: Database) {}

  /**
   * A new upload, in one transaction: `admit` runs first under the owner's lock (quotas: it throws to
   * refuse, and then nothing is written), then the bytes, the record and the name's pointer.
   */
  async create(up: NewUpload, admit: (c: pg.PoolClient) => Promise<void>): Promise<ValidationRecord> {
    return this.db.tx(async (c) => {
      await lockOwner(c, up.owner);
      await admit(c);
      await c.query(`INSERT INTO blobs (sha256, bytes) VALUES ($1, $2) ON CONFLICT (sha256) DO UPDATE SET touched_at = now()`, [
        up.sha256,
        up.bytes,
      ]);
      const { rows } = await c.query<RecordRow>(
        `INSERT INTO validations (validation_id, owner, file_name, sha256, size, blob_sha256, created_at, test_payloads, workflow_id)
         VALUES ($1, $2, $3, $4, $5, $4, now(), $6, $7) RETURNING ${RECORD_COLUMNS}`,
        [
          up.validation_id,
          up.owner,
          up.file_name,
          up.sha256,
          up.bytes.length,
          up.test_payloads ? JSON.stringify(up.test_payloads) : null,
          up.workflow_id,
        ],
      );
      await c.query(
        `INSERT INTO task_files (owner, file_name, current_validation_id, uploaded_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (owner, file_name) DO UPDATE SET current_validation_id = EXCLUDED.current_validation_id,
           uploaded_at = EXCLUDED.uploaded_at, deleted_at = NULL, deleted_validation_id = NULL`,
        [up.owner, up.file_name, up.validation_id],
      );
      return fromRow(rows[0]);
    });
  }

  async get(id: string, c: Queryable = this.db.pool): Promise<ValidationRecord | undefined> {
    if (!VALIDATION_ID_RE.test(id)) return undefined;
    const { rows } = await c.query<RecordRow>(`SELECT ${RECORD_COLUMNS} FROM validations WHERE validation_id = $1`, [id]);
    return rows[0] && fromRow(rows[0]);
  }

  /** The record, only if it belongs to `owner`: other owners' ids look exactly like unknown ones. */
  async getOwned(owner: string, id: string): Promise<ValidationRecord | undefined> {
    const rec = await this.get(id);
    return rec && rec.owner === owner ? rec : undefined;
  }

  /** Temporal accepted the start: no recovery pass will start it again. */
  async markStarted(id: string): Promise<void> {
    await this.db.pool.query('UPDATE validations SET workflow_started = true, start_error = NULL WHERE validation_id = $1', [id]);
  }

  async setStartError(id: string, message: string): Promise<void> {
    await this.db.pool.query('UPDATE validations SET start_error = $2 WHERE validation_id = $1', [id, message.slice(0, 500)]);
  }

  /** Unfinished validations whose workflow start was never confirmed, oldest first. */
  async pendingStarts(limit = 100): Promise<ValidationRecord[]> {
    const { rows } = await this.db.pool.query<RecordRow>(
      `SELECT ${RECORD_COLUMNS} FROM validations WHERE NOT workflow_started AND final IS NULL ORDER BY created_at LIMIT $1`,
      [limit],
    );
    return rows.map(fromRow);
  }

  /** Validations whose workflow started and which have no final status yet, oldest first. */
  async unfinishedStarted(limit = 500): Promise<ValidationRecord[]> {
    const { rows } = await this.db.pool.query<RecordRow>(
      `SELECT ${RECORD_COLUMNS} FROM validations WHERE workflow_started AND final IS NULL ORDER BY created_at LIMIT $1`,
      [limit],
    );
    return rows.map(fromRow);
  }

  async pointer(owner: string, name: string, c: Queryable = this.db.pool): Promise<UploadPointer | undefined> {
    const { rows } = await c.query<{
      current_validation_id: string | null;
      uploaded_at: Date | null;
      deleted_at: Date | null;
      deleted_validation_id: string | null;
    }>('SELECT current_validation_id, uploaded_at, deleted_at, deleted_validation_id FROM task_files WHERE owner = $1 AND file_name = $2', [
      owner,
      name,
    ]);
    const p = rows[0];
    if (!p) return undefined;
    if (p.current_validation_id) return { validation_id: p.current_validation_id, uploaded_at: iso(p.uploaded_at) ?? '' };
    return {
      validation_id: null,
      deleted_at: iso(p.deleted_at) ?? '',
      ...(p.deleted_validation_id ? { deleted_validation_id: p.deleted_validation_id } : {}),
    };
  }
}
