/**
 * The task files themselves: staging, promotion, the immutable version store and quarantine.
 * Promotion and quarantine are idempotent (an activity retried after a crash redoes only what is
 * missing) and every file in TASKS_DIR appears by an atomic rename, so no reader ever sees half a
 * file or a file without its record for long: the record follows it, and a retry rewrites both.
 */
import fsp from 'node:fs/promises';
import { sha256Hex } from '../../sandbox/hash';
import type { SandboxRunReport, ValidationFinding, ValidationStatus } from '../../domain/validation';
import { ensureDir, isNotFound, readIfExists, readJson, removeIfExists, writeAtomic, writeExclusive, writeJsonAtomic } from './fs-safe';
import { newStagedName } from './ids';
import type { Layout } from './layout';
import type { RecordStore, ValidationRecord } from './records';

export { sha256Hex };

/** The staged bytes are gone or no longer what was uploaded. Not worth retrying. */
export class StagedFileError extends Error {
  constructor(
    readonly kind: 'missing' | 'mismatch',
    message: string,
  ) {
    super(message);
    this.name = 'StagedFileError';
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

export class TaskFiles {
  constructor(
    private readonly layout: Layout,
    private readonly records: RecordStore,
    private readonly maxBytes: number,
  ) {}

  async init(): Promise<void> {
    await ensureDir(this.layout.stagingDir);
    await ensureDir(this.layout.quarantineDir);
    await ensureDir(this.layout.dirs.tasksDir);
  }

  /** Writes an upload under a fresh random name (O_EXCL, O_NOFOLLOW, 0600). */
  async stage(bytes: Buffer): Promise<{ stagedName: string; sha256: string; size: number }> {
    const stagedName = newStagedName();
    await writeExclusive(this.layout.staged(stagedName), bytes);
    return { stagedName, sha256: sha256Hex(bytes), size: bytes.length };
  }

  /** The staged bytes, verified against the sha256 taken at upload. */
  async readStaged(stagedName: string, sha256: string): Promise<Buffer> {
    let bytes: Buffer | undefined;
    try {
      bytes = await readIfExists(this.layout.staged(stagedName), this.maxBytes);
    } catch (err) {
      // A symlink (ELOOP), a directory or an oversize file where our staged file was: not ours any more.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'EISDIR' || code === undefined)
        throw new StagedFileError('mismatch', 'the staged upload was replaced');
      throw err;
    }
    if (bytes === undefined) throw new StagedFileError('missing', 'the staged upload is gone');
    if (sha256Hex(bytes) !== sha256) throw new StagedFileError('mismatch', 'the staged upload no longer matches its sha256');
    return bytes;
  }

  async discardStaged(stagedName: string): Promise<void> {
    await removeIfExists(this.layout.staged(stagedName));
  }

  /** A validated version by sha256, verified. Issue 4's task runs read their pinned version here. */
  async loadVersion(owner: string, _title: string, sha256: string): Promise<string> {
    let bytes: Buffer | undefined;
    try {
      bytes = await readIfExists(this.layout.version(owner, sha256), this.maxBytes);
    } catch (err) {
      throw new VersionUnavailableError(`version ${sha256.slice(0, 12)} cannot be read: ${(err as Error).message}`);
    }
    if (bytes === undefined) throw new VersionUnavailableError(`version ${sha256.slice(0, 12)} is gone`);
    if (sha256Hex(bytes) !== sha256) throw new VersionUnavailableError(`version ${sha256.slice(0, 12)} no longer matches its sha256`);
    return bytes.toString('utf8');
  }

  /**
   * Marks a version as just used (its mtime): the retention sweep never removes a version used in its
   * last few minutes, so a task created a moment ago (not yet visible as pinned) keeps its version.
   */
  async touchVersion(owner: string, sha256: string): Promise<void> {
    const now = new Date();
    await fsp.lutimes(this.layout.version(owner, sha256), now, now).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }

  async promotion(owner: string, name: string): Promise<PromotionRecord | undefined> {
    return readJson<PromotionRecord>(this.layout.promotionRecord(owner, name));
  }

  /**
   * VALIDATED: keep the immutable version, then (only if this is still the name's last upload)
   * rename it into TASKS_DIR/<owner>/<name>.py and write its record, then the final status.
   */
  async promote(id: string, final: ValidationStatus, report?: SandboxRunReport): Promise<ValidationStatus> {
    const rec = await this.mustGet(id);
    if (rec.final) return rec.final;
    const bytes = await this.validatedBytes(rec);
    await ensureDir(this.layout.ownerTasksDir(rec.owner));
    await ensureDir(this.layout.versionsDir(rec.owner));
    await writeAtomic(this.layout.version(rec.owner, rec.sha256), bytes, 0o400);

    const pointer = await this.records.pointer(rec.owner, rec.file_name);
    const latest = pointer?.validation_id === id;
    const findings: ValidationFinding[] = [...final.findings];
    if (latest) {
      await writeAtomic(this.layout.promoted(rec.owner, rec.file_name), bytes, 0o600);
      const promotion: PromotionRecord = {
        sha256: rec.sha256,
        validation_id: id,
        promoted_at: final.finished_at ?? new Date().toISOString(),
      };
      await writeJsonAtomic(this.layout.promotionRecord(rec.owner, rec.file_name), promotion);
    } else {
      findings.push({
        code: 'superseded',
        severity: 'warning',
        message: `a newer upload (or a deletion) of ${rec.file_name} came after this one: this version passed but was not promoted`,
      });
    }
    const done: ValidationStatus = { ...final, findings, promoted: latest };
    await this.records.update(id, (r) => ({ ...r, final: done, ...(report ? { report } : {}) }));
    await this.discardStaged(rec.staged_name);
    return done;
  }

  /** REJECTED: QUARANTINE_DIR/<id>.py (whatever was staged) and <id>.json (the report). Never TASKS_DIR. */
  async quarantine(id: string, final: ValidationStatus, report?: SandboxRunReport): Promise<ValidationStatus> {
    const rec = await this.mustGet(id);
    if (rec.final) return rec.final;
    await ensureDir(this.layout.quarantineDir);
    const bytes = await readIfExists(this.layout.staged(rec.staged_name), this.maxBytes);
    if (bytes !== undefined) await writeAtomic(this.layout.quarantinedFile(id), bytes, 0o600);
    await writeJsonAtomic(this.layout.quarantineReport(id), {
      ...final,
      size: rec.size,
      staged_sha256_matches: bytes === undefined ? null : sha256Hex(bytes) === rec.sha256,
      sandbox_run: report ?? null,
    });
    await this.records.update(id, (r) => ({ ...r, final, ...(report ? { report } : {}) }));
    await this.discardStaged(rec.staged_name);
    return final;
  }

  /**
   * Removes the promoted file and its record (the immutable versions stay: tasks pinned to them
   * still run). Returns what was removed, or undefined when nothing was promoted.
   */
  async deletePromoted(owner: string, name: string): Promise<Partial<PromotionRecord> | undefined> {
    const promotion = await this.promotion(owner, name);
    const removedFile = await removeIfExists(this.layout.promoted(owner, name));
    await removeIfExists(this.layout.promotionRecord(owner, name));
    if (!promotion && !removedFile) return undefined;
    return promotion ?? {};
  }

  private async mustGet(id: string): Promise<ValidationRecord> {
    const rec = await this.records.get(id);
    if (!rec) throw new Error(`validation record ${id} is missing`);
    return rec;
  }

  /** The version copy if intact (a retry after staging was cleaned up), else the verified staged bytes. */
  private async validatedBytes(rec: ValidationRecord): Promise<Buffer> {
    try {
      const kept = await readIfExists(this.layout.version(rec.owner, rec.sha256), this.maxBytes);
      if (kept !== undefined && sha256Hex(kept) === rec.sha256) return kept;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    return this.readStaged(rec.staged_name, rec.sha256);
  }
}
