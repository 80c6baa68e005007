/**
 * The few file operations a host still does (the worker's version cache, the dev token), so that a planted symlink or a stale file can never
 * redirect them: new files are created with O_EXCL|O_NOFOLLOW (mode 0600 unless told), replaced
 * files are written to a fresh temporary name in the same directory and renamed over the target,
 * reads refuse symlinks and anything that is not a regular file.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_DIRECTORY } = fs.constants;

function isNotFound(err: unknown): boolean {
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

/** Reads a regular file without following a symlink; refuses files larger than `maxBytes`. */
export async function readNoFollow(file: string, maxBytes = 16 * 1024 * 1024): Promise<Buffer> {
  const h = await fsp.open(file, O_RDONLY | O_NOFOLLOW);
  try {
    const st = await h.stat();
    if (!st.isFile()) throw new Error(`${path.basename(file)}: not a regular file`);
    if (st.size > maxBytes) throw new Error(`${path.basename(file)}: larger than ${maxBytes} bytes`);
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
