/**
 * Layers: a lock's wheels unpacked by uv (`--require-hashes --no-deps`, wheels only, no bytecode: nothing
 * of the packages runs here), made read-only, at `<cacheDir>/layers/<lock sha256>/`. Built in a private
 * temporary directory and renamed into place, so a layer that exists is complete and two builders of
 * the same lock on one host (processes or calls) cannot collide: the second rename loses and its copy
 * is dropped. A host that lacks a layer rebuilds it from the lock and the index: no host holds state
 * another host needs.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { DependencyConfig } from '../config';
import { untilDatabaseAnswers } from '../db';
import type { DependencyLayer } from '../../sandbox/types';
import type { Logger } from '../logger';
import { DependencyRejected, DependencyToolError } from './errors';
import { lockSha256, parseLock } from './lock';
import { topLevelNames } from './top-level';
import { commonArgs, uvPip } from './uv';

/** Written last into a layer before it is renamed into place: what the layer holds. */
const LAYER_INFO = '.taskflow-layer.json';
const MIB = 1024 * 1024;

export interface Layer extends DependencyLayer {
  packages: number;
  unpackedBytes: number;
  /** Importable top-level names the layer provides. */
  topLevel: string[];
}

interface LayerInfo {
  lockSha256: string;
  packages: number;
  unpackedBytes: number;
  topLevel: string[];
}

/** Bytes of regular files under `dir` (never following a link; links, which no wheel needs, are removed). */
function sizeAndPrune(dir: string): number {
  let bytes = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isSymbolicLink()) fs.unlinkSync(p);
    else if (e.isDirectory()) bytes += sizeAndPrune(p);
    else if (e.isFile()) bytes += fs.lstatSync(p).size;
    else fs.rmSync(p, { force: true });
  }
  return bytes;
}

/** Files r--r--r-- (r-x kept where it was), directories r-xr-xr-x: the sandbox's user reads, nobody writes. */
export function makeReadOnly(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) makeReadOnly(p);
    else fs.chmodSync(p, fs.lstatSync(p).mode & 0o100 ? 0o555 : 0o444);
  }
  fs.chmodSync(dir, 0o555);
}

function makeWritable(dir: string): void {
  try {
    fs.chmodSync(dir, 0o755);
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) makeWritable(path.join(dir, e.name));
  } catch {
    // gone already
  }
}

/** Removes a tree this module made read-only. */
export function removeTree(dir: string): void {
  makeWritable(dir);
  fs.rmSync(dir, { recursive: true, force: true });
}

export class LayerCache {
  private readonly building = new Map<string, Promise<Layer>>();
  readonly root: string;

  constructor(
    private readonly cfg: DependencyConfig,
    private readonly log?: Logger,
  ) {
    this.root = path.join(cfg.cacheDir, 'layers');
  }

  dirOf(lockSha: string): string {
    if (!/^[0-9a-f]{64}$/.test(lockSha)) throw new Error(`not a lock sha256: ${lockSha}`);
    return path.join(this.root, lockSha);
  }

  /** The layer if this host has it complete, else undefined. */
  find(lockSha: string): Layer | undefined {
    const dir = this.dirOf(lockSha);
    let info: LayerInfo;
    try {
      info = JSON.parse(fs.readFileSync(path.join(dir, LAYER_INFO), 'utf8')) as LayerInfo;
    } catch {
      return undefined;
    }
    if (info.lockSha256 !== lockSha) return undefined;
    return { id: lockSha, hostDir: dir, packages: info.packages, unpackedBytes: info.unpackedBytes, topLevel: info.topLevel };
  }

  /**
   * The layer of a lock known by its sha256: this host's, else built from the lock's text (`readLock`,
   * from the database: read until it answers) and the index. The text must hash to the sha256 it was asked by.
   */
  async bySha256(
    lockSha: string,
    readLock: (sha256: string) => Promise<string | undefined>,
    signal?: AbortSignal,
  ): Promise<DependencyLayer> {
    const have = this.find(lockSha);
    if (have) return { id: have.id, hostDir: have.hostDir };
    const text = await untilDatabaseAnswers(() => readLock(lockSha), signal);
    if (text === undefined) throw new Error(`dependency lock ${lockSha.slice(0, 12)} is missing from the database`);
    if (lockSha256(text) !== lockSha) throw new Error(`dependency lock ${lockSha.slice(0, 12)} does not match its sha256`);
    const built = await this.ensure(text, signal);
    return { id: built.id, hostDir: built.hostDir };
  }

  /** The lock's layer on this host, built from the lock and the index when missing. */
  ensure(lockText: string, signal?: AbortSignal): Promise<Layer> {
    const sha = lockSha256(lockText);
    const have = this.find(sha);
    if (have) return Promise.resolve(have);
    let p = this.building.get(sha);
    if (!p) {
      p = this.build(lockText, sha, signal).finally(() => this.building.delete(sha));
      this.building.set(sha, p);
    }
    return p;
  }

  private async build(lockText: string, sha: string, signal?: AbortSignal): Promise<Layer> {
    const t0 = Date.now();
    const pins = parseLock(lockText);
    if (pins.length > this.cfg.maxPackages)
      throw new DependencyRejected(
        'dependency_too_large',
        `the lock pins ${pins.length} packages; at most ${this.cfg.maxPackages} are allowed`,
      );
    fs.mkdirSync(this.root, { recursive: true });
    const dir = this.dirOf(sha);
    // A directory without its info file is a layer half removed (or from a crashed older version): set aside.
    if (fs.existsSync(dir)) this.discard(dir);
    const work = fs.mkdtempSync(path.join(this.root, `.build-${sha.slice(0, 12)}-`));
    try {
      const site = path.join(work, 'site');
      fs.writeFileSync(path.join(work, 'lock.txt'), lockText);
      await uvPip(
        this.cfg,
        [
          'install',
          ...commonArgs(this.cfg),
          '--target',
          site,
          '--require-hashes',
          '--no-deps',
          '--no-compile',
          '--quiet',
          '-r',
          'lock.txt',
        ],
        { cwd: work, signal },
      );
      if (!fs.existsSync(site)) throw new DependencyToolError('uv installed nothing');
      // Console scripts: nothing in a sandbox can run them (and their shebangs name a host path).
      fs.rmSync(path.join(site, 'bin'), { recursive: true, force: true });
      const unpackedBytes = sizeAndPrune(site);
      if (unpackedBytes > this.cfg.maxUnpackedBytes)
        throw new DependencyRejected(
          'dependency_too_large',
          `the packages unpack to ${(unpackedBytes / MIB).toFixed(1)} MiB; at most ${this.cfg.maxUnpackedBytes / MIB} MiB are allowed`,
        );
      const info: LayerInfo = { lockSha256: sha, packages: pins.length, unpackedBytes, topLevel: topLevelNames(site) };
      fs.writeFileSync(path.join(site, LAYER_INFO), JSON.stringify(info));
      makeReadOnly(site);
      try {
        fs.renameSync(site, dir);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Another builder won the race: its layer is the same bytes (the same lock, hash-checked).
        if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !this.find(sha)) throw err;
      }
      this.log?.info('dependency layer built', { lock: sha, packages: pins.length, unpackedBytes, ms: Date.now() - t0 });
      return { id: sha, hostDir: dir, ...info };
    } finally {
      removeTree(work);
    }
  }

  /** Moves a broken layer out of the way atomically (a reader never sees it half deleted), then removes it. */
  private discard(dir: string): void {
    const aside = path.join(this.root, `.discard-${crypto.randomBytes(6).toString('hex')}`);
    try {
      fs.renameSync(dir, aside);
    } catch {
      return;
    }
    removeTree(aside);
  }
}
