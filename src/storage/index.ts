/** Storage of uploads, validation records and task files, in PostgreSQL. Everything else goes through this. */
import type { Config } from '../config';
import { openDatabase, type Database } from '../db';
import type { Logger } from '../logger';
import { TaskFiles } from './files';
import { RecordStore } from './records';
import { TaskRecords } from './tasks';
import { DependencyLocks } from './locks';

export { RecordStore, lockOwner, clipStatus, type UploadPointer, type ValidationRecord, type NewUpload } from './records';
export { TaskFiles, UploadBytesError, VersionUnavailableError, sha256Hex, type PromotionRecord, type DeleteOutcome } from './files';
export * from './ids';
export { TaskRecords, type NewTask } from './tasks';
export { ownerUsage, ownerLayerBytes, isLiveName, type OwnerUsage } from './usage';
export { DependencyLocks, type StoredLock, type AttachOutcome } from './locks';

export interface Storage {
  db: Database;
  records: RecordStore;
  files: TaskFiles;
  tasks: TaskRecords;
  locks: DependencyLocks;
  close(): Promise<void>;
}

/** Connects, migrates the schema (once across replicas), and readies this host's version cache. */
export async function openStorage(config: Pick<Config, 'database' | 'tasksDir'>, log: Logger): Promise<Storage> {
  const db = await openDatabase(config.database, log);
  const files = new TaskFiles(db, config.tasksDir);
  await files.init();
  return { db, records: new RecordStore(db), files, tasks: new TaskRecords(db), locks: new DependencyLocks(db), close: () => db.close() };
}
