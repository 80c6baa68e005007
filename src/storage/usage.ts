/**
 * What an owner has on disk, for the quotas: uploads still being validated, bytes kept, live names.
 * Read from the owner's markers and records (finished records never change, so they are cached),
 * the quarantine and TASKS_DIR/<owner>: always what is there now, also after a restart or a sweep.
 */
import path from 'node:path';
import { fileStat, listDir } from './fs-safe';
import type { Layout } from './layout';
import type { RecordStore, ValidationRecord } from './records';

export interface OwnerUsage {
  /** Uploads not yet VALIDATED or REJECTED. */
  validationsInFlight: number;
  /** Staged uploads + quarantined files + validated versions + promoted files. */
  storedBytes: number;
}

type Finished = Pick<ValidationRecord, 'validation_id' | 'size'> & { rejected: boolean };

const sizeOf = async (file: string): Promise<number> => (await fileStat(file))?.size ?? 0;

export class UsageReader {
  /** Per owner: their finished records as last listed (entries the sweep removed drop out on the next read). */
  private readonly finished = new Map<string, Map<string, Finished>>();

  constructor(
    private readonly layout: Layout,
    private readonly records: RecordStore,
  ) {}

  async of(owner: string): Promise<OwnerUsage> {
    let validationsInFlight = 0;
    let storedBytes = 0;
    const before = this.finished.get(owner) ?? new Map<string, Finished>();
    const now = new Map<string, Finished>();
    this.finished.set(owner, now);
    for (const id of await this.records.idsOf(owner)) {
      let done = before.get(id);
      if (!done) {
        const rec = await this.records.get(id).catch(() => undefined);
        if (!rec || rec.owner !== owner) continue;
        if (!rec.final) {
          validationsInFlight++;
          storedBytes += rec.size;
          continue;
        }
        done = { validation_id: id, size: rec.size, rejected: rec.final.status === 'REJECTED' };
      }
      now.set(id, done);
      // A rejected upload takes room while it is in quarantine (the sweep removes it in time).
      if (done.rejected) storedBytes += await sizeOf(this.layout.quarantinedFile(id));
    }
    const tasksDir = this.layout.ownerTasksDir(owner);
    for (const name of await listDir(tasksDir)) if (name.endsWith('.py')) storedBytes += await sizeOf(path.join(tasksDir, name));
    const versionsDir = this.layout.versionsDir(owner);
    for (const name of await listDir(versionsDir)) if (name.endsWith('.py')) storedBytes += await sizeOf(path.join(versionsDir, name));
    return { validationsInFlight, storedBytes };
  }

  /** Names whose last upload is live (not deleted): what QUOTA_FILE_NAMES counts. */
  async liveNames(owner: string): Promise<Set<string>> {
    const names = new Set<string>();
    for (const entry of await listDir(this.layout.ownerUploadsDir(owner))) {
      if (!entry.endsWith('.json')) continue;
      const name = entry.slice(0, -5);
      const pointer = await this.records.pointer(owner, name).catch(() => undefined);
      if (pointer?.validation_id) names.add(name);
    }
    return names;
  }
}
