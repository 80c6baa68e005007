/** Storage of uploads, validation records and task files. Everything else goes through this. */
import type { Config } from '../config';
import { TaskFiles } from './files';
import { Layout } from './layout';
import { RecordStore } from './records';
import { UsageReader } from './usage';

export { Layout } from './layout';
export { UnreadableFileError } from './fs-safe';
export { RecordStore, type UploadPointer, type ValidationRecord } from './records';
export { TaskFiles, StagedFileError, VersionUnavailableError, sha256Hex, type PromotionRecord } from './files';
export * from './ids';
export { UsageReader, type OwnerUsage } from './usage';

export interface Storage {
  layout: Layout;
  records: RecordStore;
  files: TaskFiles;
  usage: UsageReader;
}

export async function openStorage(
  config: Pick<Config, 'dataDir' | 'stagingDir' | 'quarantineDir' | 'tasksDir' | 'maxUploadBytes'>,
): Promise<Storage> {
  const layout = new Layout(config);
  const records = new RecordStore(layout);
  const files = new TaskFiles(layout, records, config.maxUploadBytes);
  await records.init();
  await files.init();
  return { layout, records, files, usage: new UsageReader(layout, records) };
}
