/** The corpus of ordinary task files that must pass: the checker's unit tests and the end-to-end suite share it. */
import fs from 'node:fs';
import path from 'node:path';

export const CORPUS = path.join(__dirname, '..', 'fixtures', 'corpus');

/** The only findings a corpus file may have (all warnings); every other file has none. */
export const CORPUS_WARNINGS: Record<string, string[]> = {
  'lookup_table_loop.py': ['import_time_work'],
};

export function corpusFiles(): string[] {
  return fs
    .readdirSync(CORPUS)
    .filter((f) => f.endsWith('.py'))
    .sort();
}
