/**
 * The retention sweep over storage: what has outlived its configured lifetime goes, and what is
 * still in use never does. Run periodically by the `retentionSweep` workflow (a Temporal schedule).
 * - Records of finished uploads older than RETENTION_RECORD_DAYS; a name's last upload stays while the
 *   name does, unless it was rejected (then the name goes with it: it has no usable file).
 * - Quarantined files and reports older than RETENTION_QUARANTINE_DAYS.
 * - Validated versions that are not current: beyond the newest QUOTA_KEPT_VERSIONS of their name, or
 *   older than RETENTION_VERSION_DAYS. Never one an unfinished task is pinned to, never one used in the
 *   last GRACE_MS (a task created a moment ago may not be visible yet), never any when the pins are unknown.
 * - Staged files no unfinished upload refers to (a crash between staging and the record), and the
 *   owner markers and deletion tombstones that lead nowhere, after GRACE_MS.
 */
import path from 'node:path';
import { FILE_NAME_RE, OWNER_RE, SHA256_RE } from '../../domain/names';
import type { Retention } from '../quotas/definitions';
import type { Storage, ValidationRecord } from '../storage';
import { STAGED_NAME_RE } from '../storage';
import { fileStat, listDir, removeIfExists } from '../storage/fs-safe';

const DAY_MS = 86_400_000;
/** Younger than this, nothing is swept: uploads and task creations in progress finish well within it. */
export const GRACE_MS = 10 * 60_000;

export interface SweepOptions {
  retention: Retention;
  keptVersions: number;
  /** `owner/sha256` of every version an unfinished task is pinned to; undefined when unknown (no version is removed). */
  pinned: ReadonlySet<string> | undefined;
  now?: number;
}

export interface SweepReport {
  records: number;
  quarantined: number;
  versions: number;
  staged: number;
  markers: number;
  tombstones: number;
  bytesFreed: number;
  /** Why versions were not looked at, when they were not. */
  versionsSkipped?: string;
  /** Records that could not be read (skipped, and reported: an operator repairs or removes them). */
  unreadableRecords?: { count: number; ids: string[] };
  /** Why staged files were not looked at, when they were not. */
  stagedSkipped?: string;
}

/** The report's counts of removed things. */
type Counter = 'records' | 'quarantined' | 'versions' | 'staged' | 'markers' | 'tombstones';

/** How many unreadable record ids a report names (the count is always complete). */
const UNREADABLE_IDS_SHOWN = 20;

export const pinKey = (owner: string, sha256: string): string => `${owner}/${sha256}`;

const timeOf = (iso: string | null | undefined): number => {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? t : 0;
};

export async function sweep(storage: Storage, opts: SweepOptions): Promise<SweepReport> {
  const { layout, records } = storage;
  const now = opts.now ?? Date.now();
  const report: SweepReport = { records: 0, quarantined: 0, versions: 0, staged: 0, markers: 0, tombstones: 0, bytesFreed: 0 };
  /** Removes `file` and counts it; `st`: its stat, when the caller has just taken it. */
  const remove = async (file: string, what: Counter, st?: { size: number }) => {
    const size = (st ?? (await fileStat(file)))?.size ?? 0;
    if (await removeIfExists(file)) {
      report[what]++;
      report.bytesFreed += size;
    }
  };

  // Every record once: what is in flight, what each name's versions are, what has expired.
  const all: ValidationRecord[] = [];
  const unreadable: string[] = [];
  for (const id of await records.allIds()) {
    const rec = await records.get(id).catch(() => null);
    if (rec === null || (rec && !OWNER_RE.test(rec.owner))) unreadable.push(id);
    else if (rec) all.push(rec);
  }
  if (unreadable.length) report.unreadableRecords = { count: unreadable.length, ids: unreadable.slice(0, UNREADABLE_IDS_SHOWN) };
  // Validation ids that are some name's last upload; a rejected one does not keep its name alive.
  const current = new Set<string>();
  const rejectedLast = new Map<string, string>(); // validation id → name
  const byId = new Map(all.map((r) => [r.validation_id, r]));
  for (const owner of new Set(all.map((r) => r.owner))) {
    for (const entry of await listDir(layout.ownerUploadsDir(owner))) {
      const name = entry.slice(0, -5);
      if (!entry.endsWith('.json') || !FILE_NAME_RE.test(name)) continue;
      const p = await records.pointer(owner, name).catch(() => undefined);
      if (p?.validation_id && byId.get(p.validation_id)?.final?.status === 'REJECTED') rejectedLast.set(p.validation_id, name);
      else if (p?.validation_id) current.add(p.validation_id);
      else if (p && p.validation_id === null && now - timeOf(p.deleted_at) > opts.retention.recordDays * DAY_MS) {
        await remove(layout.uploadPointer(owner, name), 'tombstones');
      }
    }
  }

  const stagedInUse = new Set<string>();
  const kept: ValidationRecord[] = [];
  for (const rec of all) {
    const finishedAt = timeOf(rec.final?.finished_at) || timeOf(rec.created_at);
    if (rec.final && !current.has(rec.validation_id) && now - finishedAt > opts.retention.recordDays * DAY_MS) {
      const st = await fileStat(layout.validationRecord(rec.validation_id));
      // A name whose last upload was rejected and has expired goes with it (nothing usable was left).
      const name = rejectedLast.get(rec.validation_id);
      if (name && (await records.pointer(rec.owner, name).catch(() => undefined))?.validation_id === rec.validation_id) {
        await removeIfExists(layout.uploadPointer(rec.owner, name));
      }
      await records.remove(rec);
      report.records++;
      report.bytesFreed += st?.size ?? 0;
      continue;
    }
    kept.push(rec);
    if (!rec.final) stagedInUse.add(rec.staged_name);
  }

  for (const entry of await listDir(layout.quarantineDir)) {
    const file = path.join(layout.quarantineDir, entry);
    const st = await fileStat(file);
    if (st && now - st.mtimeMs > opts.retention.quarantineDays * DAY_MS) await remove(file, 'quarantined', st);
  }

  // A record we cannot read may be an upload still validating: its staged file must stay.
  if (unreadable.length) report.stagedSkipped = `${unreadable.length} record(s) could not be read`;
  else
    for (const entry of await listDir(layout.stagingDir)) {
      if (!STAGED_NAME_RE.test(entry) || stagedInUse.has(entry)) continue;
      const st = await fileStat(layout.staged(entry));
      if (st && now - st.mtimeMs > GRACE_MS) await remove(layout.staged(entry), 'staged', st);
    }

  // Owner markers whose record is gone (a crash between marker and record, or a removal half done).
  const ownerOf = new Map(kept.map((r) => [r.validation_id, r.owner]));
  for (const owner of await records.owners()) {
    for (const id of await records.idsOf(owner)) {
      if (ownerOf.get(id) === owner || unreadable.includes(id)) continue;
      const st = await fileStat(layout.ownerRecordMarker(owner, id));
      if (st && now - st.mtimeMs > GRACE_MS && !(await records.get(id).catch(() => undefined)))
        await remove(layout.ownerRecordMarker(owner, id), 'markers', st);
    }
  }

  if (!opts.pinned) {
    report.versionsSkipped = 'the versions unfinished tasks are pinned to are unknown';
    return report;
  }
  // The newest QUOTA_KEPT_VERSIONS validated versions of each name (by records still kept).
  const keptByName = new Set<string>();
  const byName = new Map<string, ValidationRecord[]>();
  for (const rec of kept) {
    if (rec.final?.status !== 'VALIDATED') continue;
    const key = `${rec.owner}/${rec.file_name}`;
    byName.set(key, [...(byName.get(key) ?? []), rec]);
  }
  for (const list of byName.values()) {
    const shas = [...new Set(list.sort((a, b) => timeOf(b.final?.finished_at) - timeOf(a.final?.finished_at)).map((r) => r.sha256))];
    for (const sha of shas.slice(0, opts.keptVersions)) keptByName.add(pinKey(list[0].owner, sha));
  }
  for (const owner of (await listDir(layout.dirs.tasksDir)).filter((o) => OWNER_RE.test(o))) {
    const promoted = new Set<string>();
    for (const entry of await listDir(layout.ownerTasksDir(owner))) {
      const name = entry.slice(0, -5);
      if (!entry.endsWith('.json') || !FILE_NAME_RE.test(name)) continue;
      const p = await storage.files.promotion(owner, name).catch(() => undefined);
      if (p) promoted.add(p.sha256);
    }
    for (const entry of await listDir(layout.versionsDir(owner))) {
      const sha = entry.slice(0, -3);
      if (!entry.endsWith('.py') || !SHA256_RE.test(sha)) continue;
      if (promoted.has(sha) || opts.pinned.has(pinKey(owner, sha))) continue;
      const st = await fileStat(layout.version(owner, sha));
      if (!st || now - st.mtimeMs <= GRACE_MS) continue;
      const expired = now - st.mtimeMs > opts.retention.versionDays * DAY_MS;
      if (expired || !keptByName.has(pinKey(owner, sha))) await remove(layout.version(owner, sha), 'versions', st);
    }
  }
  return report;
}
