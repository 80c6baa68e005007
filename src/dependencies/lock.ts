/**
 * A lock: every package the requirements need, pinned to one version with the sha256 of its wheels,
 * resolved once (at validation) by `uv pip compile` for the sandbox's target. Its text is kept with the
 * validated version; its sha256 names the layer unpacked from it.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DependencyConfig } from '../config';
import { DependencyRejected, DependencyToolError } from './errors';
import { LOCK_HEADER } from './target';
import { commonArgs, uvPip } from './uv';

export interface Pin {
  /** As the index spells it, normalised (PEP 503: lower case, runs of `-_.` as `-`). */
  name: string;
  version: string;
  hashes: string[];
}

export interface Lock {
  text: string;
  /** sha256 of `text`: the layer's id. */
  sha256: string;
  pins: Pin[];
}

export const lockSha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** The pins of a lock's text (`name==version \` then `--hash=sha256:...` lines). */
export function parseLock(text: string): Pin[] {
  const pins: Pin[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const pin = /^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)/.exec(line);
    if (pin) pins.push({ name: pin[1].toLowerCase().replace(/[-_.]+/g, '-'), version: pin[2], hashes: [] });
    for (const h of line.matchAll(/--hash=sha256:([0-9a-f]{64})/g)) pins[pins.length - 1]?.hashes.push(h[1]);
  }
  return pins;
}

/**
 * Requirements are PEP 508 strings the checker parsed; they are written one per line into a
 * requirements file, so refuse anything that file would read as more than a requirement: options
 * (`--index-url`, `-r`), line continuations, and direct references (`name @ url`: they bypass the index
 * and could name a host path).
 */
export function checkRequirements(requirements: string[]): void {
  for (const r of requirements) {
    const spec = r.split(';')[0];
    if (!/^\s*[A-Za-z0-9]/.test(r) || /[\r\n\\]/.test(r) || r.length > 500)
      throw new DependencyRejected('dependency_unresolvable', `'${r.slice(0, 100)}' is not a requirement (PEP 508: a name, then versions)`);
    if (spec.includes('@') || /:\/\//.test(spec))
      throw new DependencyRejected(
        'dependency_unresolvable',
        `'${r.slice(0, 100)}' is a direct reference: only packages from the package index can be declared (name and versions)`,
      );
  }
}

/** Resolves `requirements` to a lock. Throws DependencyRejected (the requirements' fault) or PackageIndexUnavailable. */
export async function resolveLock(cfg: DependencyConfig, requirements: string[], signal?: AbortSignal): Promise<Lock> {
  checkRequirements(requirements);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'taskflow-resolve-'));
  try {
    await fs.writeFile(path.join(dir, 'requirements.in'), requirements.map((r) => `${r.trim()}\n`).join(''));
    const { stdout } = await uvPip(
      cfg,
      ['compile', ...commonArgs(cfg), '--generate-hashes', '--no-header', '--no-annotate', '--quiet', 'requirements.in'],
      { cwd: dir, signal },
    );
    const text = `${LOCK_HEADER}\n${stdout.trim()}\n`;
    const pins = parseLock(text);
    // Printed to stdout (`-o -` with --quiet prints nothing): an empty lock for real requirements is uv misbehaving.
    if (pins.length === 0) throw new DependencyToolError(`uv resolved ${requirements.join(', ')} to nothing`);
    if (pins.some((p) => p.hashes.length === 0))
      throw new DependencyRejected(
        'dependency_no_wheel',
        `no hashed wheel for ${pins
          .filter((p) => !p.hashes.length)
          .map((p) => p.name)
          .join(', ')}`,
      );
    if (pins.length > cfg.maxPackages)
      throw new DependencyRejected(
        'dependency_too_large',
        `the requirements need ${pins.length} packages (${pins.map((p) => p.name).join(', ')}); at most ${cfg.maxPackages} are allowed`,
      );
    return { text, sha256: lockSha256(text), pins };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
