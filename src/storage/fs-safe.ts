/**
 * The few file operations storage needs, done so that a planted symlink or a stale file can never
 * redirect them: new files are created with O_EXCL|O_NOFOLLOW (mode 0600 unless told), replaced
 * files are written to a fresh temporary name in the same directory and renamed over the target,
 * reads refuse symlinks and anything that is not a regular file.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_DIRECTORY } = fs.constants;

/** A file of ours that cannot be used: too large, not a regular file, or (for JSON) not JSON. */
export class UnreadableFileError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${path.basename(file)}: ${reason}`);
    this.name = 'UnreadableFileError';
  }
}

/** Largest JSON file `readJson` reads: records are compact and their parts bounded, so far below this. */
export const MAX_JSON_FILE_BYTES = 4 * 1024 * 1024;

export function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}

/** Creates `dir` (0700) if needed and insists it is a real directory, not a symlink to one. */
export async function ensureDir(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await fsp.lstat(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory (a symlink or a file is in the way)`);
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await fsp.open(dir, O_RDONLY | O_DIRECTORY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Creates `file`, failing if anything (a file, a symlink) already has that name. */
export async function writeExclusive(file: string, data: Buffer | string, mode = 0o600): Promise<void> {
  const h = await fsp.open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
}

/** An empty marker file at `file`; one already there is fine. */
export async function touchExclusive(file: string): Promise<void> {
  await writeExclusive(file, '').catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
}

/** Replaces `file` atomically: readers see the old content or the new one, never a mix. */
export async function writeAtomic(file: string, data: Buffer | string, mode = 0o600): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.tmp-${crypto.randomBytes(8).toString('hex')}`);
  try {
    await writeExclusive(tmp, data, mode);
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
}

/** Compact JSON (indentation would make a deeply nested value grow with the square of its depth). */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeAtomic(file, JSON.stringify(value) + '\n');
}

/** Reads a regular file without following a symlink; refuses files larger than `maxBytes`. */
export async function readNoFollow(file: string, maxBytes = 16 * 1024 * 1024): Promise<Buffer> {
  const h = await fsp.open(file, O_RDONLY | O_NOFOLLOW);
  try {
    const st = await h.stat();
    if (!st.isFile()) throw new UnreadableFileError(file, 'not a regular file');
    if (st.size > maxBytes) throw new UnreadableFileError(file, `larger than ${maxBytes} bytes`);
    return await h.readFile();
  } finally {
    await h.close();
  }
}

/** The file's bytes, or undefined when it does not exist. */
export async function readIfExists(file: string, maxBytes?: number): Promise<Buffer | undefined> {
  try {
    return await readNoFollow(file, maxBytes);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * The parsed file, or undefined when it does not exist. A file that exists but cannot be used
 * (oversized, a symlink or directory in its place, not JSON) throws `UnreadableFileError`, so
 * callers can report and skip it; other I/O errors (EMFILE, EIO) are thrown as they are.
 */
export async function readJson<T>(file: string): Promise<T | undefined> {
  let raw: Buffer | undefined;
  try {
    raw = await readIfExists(file, MAX_JSON_FILE_BYTES);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new UnreadableFileError(file, 'a symlink');
    throw err;
  }
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw.toString('utf8')) as T;
  } catch {
    throw new UnreadableFileError(file, 'not valid JSON');
  }
}

/** A regular file's mtime and size (lstat: a symlink is not followed), or undefined when there is no such file. */
export async function fileStat(file: string): Promise<{ mtimeMs: number; size: number } | undefined> {
  try {
    const st = await fsp.lstat(file);
    return st.isFile() ? { mtimeMs: st.mtimeMs, size: st.size } : undefined;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export async function removeIfExists(file: string): Promise<boolean> {
  try {
    await fsp.unlink(file);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

export async function listDir(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
}
