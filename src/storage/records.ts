/**
 * Durable bookkeeping of uploads, written before any workflow starts so that nothing is lost when
 * the API, a worker or Temporal stops at a bad moment:
 * - one record per validation (owner, name, sha256, staged name; its final status once decided),
 * - one pointer per owner/name to its last upload, which decides what `POST /tasks/` may use,
 * - a marker per validation whose workflow start has not been confirmed yet (re-started at boot),
 * - a marker per record under its owner, so that an owner's records are listed without reading all.
 */
import type { SandboxRunReport, ValidationStatus } from '../../domain/validation';
import path from 'node:path';
import {
  ensureDir,
  listDir,
  readIfExists,
  readJson,
  removeIfExists,
  UnreadableFileError,
  touchExclusive,
  writeExclusive,
  writeJsonAtomic,
} from './fs-safe';
import { OWNER_RE, VALIDATION_ID_RE } from '../../domain/names';
import type { Layout } from './layout';

export interface ValidationRecord {
  validation_id: string;
  owner: string;
  file_name: string;
  sha256: string;
  size: number;
  staged_name: string;
  created_at: string;
  test_payloads?: unknown[];
  workflow_id: string;
  /** False until Temporal accepted the start (or said it already had it). */
  workflow_started: boolean;
  /** Why the last start attempt failed (the upload answered 503); cleared once started. */
  start_error?: string;
  /** The status at the workflow's end, written by the promote / quarantine activity. */
  final?: ValidationStatus;
  report?: SandboxRunReport;
}

export type UploadPointer =
  { validation_id: string; uploaded_at: string } | { validation_id: null; deleted_at: string; deleted_validation_id?: string };

export class RecordStore {
  constructor(private readonly layout: Layout) {}

  async init(): Promise<void> {
    await ensureDir(this.layout.validationsDir);
    await ensureDir(this.layout.pendingStartDir);
    await this.indexOwners();
  }

  /** A new record: refuses to overwrite (validation ids are random, a clash is a bug). */
  async create(rec: ValidationRecord): Promise<void> {
    // The owner's marker first: a crash in between leaves a marker without a record (skipped and
    // swept), never a record its owner's quotas do not see.
    await this.markOwner(rec.owner, rec.validation_id);
    await writeExclusive(this.layout.validationRecord(rec.validation_id), JSON.stringify(rec) + '\n');
  }

  /** The record; `UnreadableFileError` when it exists but cannot be used (callers report and skip it). */
  async get(id: string): Promise<ValidationRecord | undefined> {
    if (!VALIDATION_ID_RE.test(id)) return undefined;
    const file = this.layout.validationRecord(id);
    const rec = await readJson<ValidationRecord>(file);
    if (rec !== undefined && !(isObject(rec) && rec.validation_id === id && typeof rec.owner === 'string')) {
      throw new UnreadableFileError(file, 'not a validation record');
    }
    return rec;
  }

  /** The record, only if it belongs to `owner`: other owners' ids look exactly like unknown ones. */
  async getOwned(owner: string, id: string): Promise<ValidationRecord | undefined> {
    const rec = await this.get(id);
    return rec && rec.owner === owner ? rec : undefined;
  }

  async update(id: string, patch: (rec: ValidationRecord) => ValidationRecord): Promise<ValidationRecord> {
    const rec = await this.get(id);
    if (!rec) throw new Error(`validation record ${id} is missing`);
    const next = patch(rec);
    await writeJsonAtomic(this.layout.validationRecord(id), next);
    return next;
  }

  async pointer(owner: string, name: string): Promise<UploadPointer | undefined> {
    const file = this.layout.uploadPointer(owner, name);
    const p = await readJson<UploadPointer>(file);
    if (p !== undefined && !(isObject(p) && (p.validation_id === null || typeof p.validation_id === 'string'))) {
      throw new UnreadableFileError(file, 'not an upload pointer');
    }
    return p;
  }

  async setPointer(owner: string, name: string, p: UploadPointer): Promise<void> {
    await ensureDir(this.layout.ownerUploadsDir(owner));
    await writeJsonAtomic(this.layout.uploadPointer(owner, name), p);
  }

  /** Ids of `owner`'s records (some may have just been removed: `get` then answers undefined). */
  async idsOf(owner: string): Promise<string[]> {
    return (await listDir(this.layout.ownerRecordsDir(owner))).filter((n) => VALIDATION_ID_RE.test(n));
  }

  /** Every record id. */
  async allIds(): Promise<string[]> {
    return (await listDir(this.layout.validationsDir)).flatMap((n) =>
      n.endsWith('.json') && VALIDATION_ID_RE.test(n.slice(0, -5)) ? [n.slice(0, -5)] : [],
    );
  }

  /** Owners that have (or had) records. */
  async owners(): Promise<string[]> {
    return (await listDir(this.layout.byOwnerDir)).filter((n) => OWNER_RE.test(n));
  }

  /** Removes a record, its owner marker and its pending-start marker. */
  async remove(rec: Pick<ValidationRecord, 'validation_id' | 'owner'>): Promise<void> {
    await removeIfExists(this.layout.validationRecord(rec.validation_id));
    await removeIfExists(this.layout.pendingStart(rec.validation_id));
    await this.unmarkOwner(rec.owner, rec.validation_id);
  }

  async unmarkOwner(owner: string, id: string): Promise<void> {
    await removeIfExists(this.layout.ownerRecordMarker(owner, id));
  }

  private async markOwner(owner: string, id: string): Promise<void> {
    await ensureDir(this.layout.ownerRecordsDir(owner));
    await touchExclusive(this.layout.ownerRecordMarker(owner, id));
  }

  /** Records written before the owner index existed get their markers once (`.indexed` says it is done). */
  private async indexOwners(): Promise<void> {
    const done = path.join(this.layout.byOwnerDir, '.indexed');
    if (await readIfExists(done)) return;
    await ensureDir(this.layout.byOwnerDir);
    for (const id of await this.allIds()) {
      const rec = await this.get(id).catch(() => undefined);
      if (rec && OWNER_RE.test(rec.owner)) await this.markOwner(rec.owner, id);
    }
    await writeJsonAtomic(done, { indexed_at: new Date().toISOString() });
  }

  async markPendingStart(id: string): Promise<void> {
    await touchExclusive(this.layout.pendingStart(id));
  }

  async clearPendingStart(id: string): Promise<void> {
    await removeIfExists(this.layout.pendingStart(id));
  }

  /** Validation ids whose workflow start was never confirmed. */
  async pendingStarts(): Promise<string[]> {
    return (await listDir(this.layout.pendingStartDir)).filter((n) => VALIDATION_ID_RE.test(n));
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
