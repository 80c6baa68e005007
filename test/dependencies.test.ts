/**
 * Resolving PEP 723 requirements to a lock and unpacking a lock into a layer, with the real uv against a
 * real package index on loopback (pypiserver) serving wheels this test builds: a pure-Python package, one
 * that depends on it, a C extension compiled here, an sdist-only package whose setup.py must never run.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type DependencyConfig } from '../src/config';
import {
  DependencyRejected,
  LayerCache,
  PackageIndexUnavailable,
  parseLock,
  removeTree,
  resolveLock,
  undeclaredImports,
  LOCK_HEADER,
} from '../src/dependencies';
import { buildCExtensionWheel, buildSdist, buildWheel, startPackageIndex, UV_PATH, type PackageIndex } from './helpers/package-index';

jest.setTimeout(120000);

let work: string;
let packages: string;
let index: PackageIndex;
let marker: string;

function config(over: Record<string, string> = {}): DependencyConfig {
  return loadConfig({
    DATA_DIR: path.join(work, 'data'),
    DEPENDENCY_UV_PATH: UV_PATH,
    DEPENDENCY_CACHE_DIR: path.join(work, 'cache'),
    PACKAGE_INDEX_URL: index.url,
    ...over,
  }).dependencies;
}

/** The error a promise rejects with. */
async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-deps-'));
  packages = path.join(work, 'packages');
  fs.mkdirSync(packages);
  marker = path.join(work, 'setup-py-ran');
  buildWheel(packages, { name: 'tinyanswer', version: '1.0', files: { 'tinyanswer/__init__.py': 'ANSWER = 41\n' } });
  buildWheel(packages, { name: 'tinyanswer', version: '2.0', files: { 'tinyanswer/__init__.py': 'ANSWER = 42\n' } });
  buildWheel(packages, {
    name: 'tiny-wrap',
    version: '1.0',
    requires: ['tinyanswer>=2'],
    files: { 'tinywrap.py': 'import tinyanswer\n\ndef doubled():\n    return 2 * tinyanswer.ANSWER\n' },
  });
  buildWheel(packages, {
    name: 'bulky',
    version: '1.0',
    files: { 'bulky/__init__.py': `DATA = ${JSON.stringify('x'.repeat(200_000))}\n` },
  });
  buildCExtensionWheel(packages, 'cfast', '1.0', 'cfast', 7);
  buildSdist(packages, 'onlysource', '1.0', marker);
  index = await startPackageIndex(packages);
});

afterAll(async () => {
  await index?.stop();
  if (work) removeTree(work);
});

test('requirements resolve to exact pins with sha256 hashes, transitive ones included, for the sandbox target', async () => {
  const lock = await resolveLock(config(), ['tiny-wrap', 'cfast==1.*']);
  expect(lock.text.startsWith(`${LOCK_HEADER}\n`)).toBe(true);
  expect(lock.pins.map((p) => `${p.name}==${p.version}`)).toEqual(['cfast==1.0', 'tiny-wrap==1.0', 'tinyanswer==2.0']);
  for (const p of lock.pins) expect(p.hashes.length).toBeGreaterThanOrEqual(1);
  const wheel = fs.readFileSync(path.join(packages, 'tinyanswer-2.0-py3-none-any.whl'));
  const sha = createHash('sha256').update(wheel).digest('hex');
  expect(lock.pins.find((p) => p.name === 'tinyanswer')!.hashes).toEqual([sha]);
  expect(parseLock(lock.text)).toEqual(lock.pins);
  expect(lock.sha256).toMatch(/^[0-9a-f]{64}$/);
});

test('a lock unpacks into a read-only, content-addressed layer that provides its top-level names and imports', async () => {
  const cfg = config();
  const lock = await resolveLock(cfg, ['tiny-wrap', 'cfast']);
  const layer = await new LayerCache(cfg).ensure(lock.text);
  expect(layer.id).toBe(lock.sha256);
  expect(layer.hostDir).toBe(path.join(cfg.cacheDir, 'layers', lock.sha256));
  expect(layer.packages).toBe(3);
  expect(layer.topLevel).toEqual(['cfast', 'tinyanswer', 'tinywrap']);
  expect(layer.unpackedBytes).toBeGreaterThan(1000);
  // Nothing byte-compiled, no console scripts, no write bit (the tests run as root, which ignores modes: the
  // sandbox's user does not; its read-only bind mount is tested with the sandbox).
  const all = execFileSync('find', [layer.hostDir], { encoding: 'utf8' }).trim().split('\n');
  expect(all.filter((f) => f.endsWith('.pyc') || f.includes('__pycache__'))).toEqual([]);
  for (const f of all) expect(fs.statSync(f).mode & 0o222).toBe(0);
  // The C extension was compiled for the sandbox's interpreter: it loads there.
  const out = execFileSync(
    '/usr/bin/python3.11',
    [
      '-I',
      '-c',
      `import sys; sys.path.append(${JSON.stringify(layer.hostDir)}); import cfast, tinywrap; print(cfast.add(2, 3), tinywrap.doubled())`,
    ],
    { encoding: 'utf8' },
  );
  expect(out.trim()).toBe('5 84');
});

test('an unknown package and an impossible version are dependency_unresolvable', async () => {
  for (const reqs of [['no-such-package-here'], ['tinyanswer>=3'], ['tiny-wrap', 'tinyanswer<2']]) {
    const err = await failure(resolveLock(config(), reqs));
    expect(err).toBeInstanceOf(DependencyRejected);
    expect((err as DependencyRejected).code).toBe('dependency_unresolvable');
  }
});

test('direct references and option lines are refused before uv sees them', async () => {
  for (const r of ['tinyanswer @ file:///etc/passwd', '--extra-index-url http://127.0.0.1:1/simple', 'pkg @ https://127.0.0.1/x.whl']) {
    const err = await failure(resolveLock(config(), [r]));
    expect((err as DependencyRejected).code).toBe('dependency_unresolvable');
  }
});

test('an sdist-only package is dependency_no_wheel, and its setup.py never runs', async () => {
  const err = await failure(resolveLock(config(), ['onlysource']));
  expect(err).toBeInstanceOf(DependencyRejected);
  expect((err as DependencyRejected).code).toBe('dependency_no_wheel');
  expect(err.message).toContain('onlysource');
  expect(fs.existsSync(marker)).toBe(false);
});

test('more packages or more unpacked bytes than allowed are dependency_too_large', async () => {
  const many = await failure(resolveLock(config({ DEPENDENCY_MAX_PACKAGES: '1' }), ['tiny-wrap']));
  expect((many as DependencyRejected).code).toBe('dependency_too_large');
  // DEPENDENCY_MAX_UNPACKED_MIB's unit is MiB: measure a 0.2 MiB package against a budget set in bytes.
  const cfg = { ...config(), maxUnpackedBytes: 100_000 };
  const lock = await resolveLock(cfg, ['bulky']);
  const cache = new LayerCache(cfg);
  const big = await failure(cache.ensure(lock.text));
  expect((big as DependencyRejected).code).toBe('dependency_too_large');
  expect(cache.find(lock.sha256)).toBeUndefined();
  expect(fs.readdirSync(cache.root).filter((d) => d.startsWith('.build-'))).toEqual([]);
});

test('the index down (refused, a name that does not resolve, 503) is PackageIndexUnavailable (retried), never a rejection', async () => {
  // An index that answers 503 to everything, as one behind a failing proxy or mid-deploy would.
  const failing = http.createServer((_req, res) => res.writeHead(503).end('unavailable'));
  await new Promise<void>((r) => failing.listen(0, '127.0.0.1', r));
  const port = (failing.address() as AddressInfo).port;
  try {
    for (const url of ['http://127.0.0.1:9/simple/', 'http://no-such-index.invalid/simple/', `http://127.0.0.1:${port}/simple/`]) {
      const err = await failure(resolveLock(config({ PACKAGE_INDEX_URL: url }), ['tinyanswer']));
      expect([url, err]).toEqual([url, expect.any(PackageIndexUnavailable)]);
    }
  } finally {
    failing.close();
  }
});

test('a removed layer is rebuilt from its lock; concurrent builders of one lock share one layer', async () => {
  const cfg = config({ DEPENDENCY_CACHE_DIR: path.join(work, 'cache-concurrent') });
  const lock = await resolveLock(cfg, ['tiny-wrap']);
  const [a, b, c] = await Promise.all([
    new LayerCache(cfg).ensure(lock.text),
    new LayerCache(cfg).ensure(lock.text),
    new LayerCache(cfg).ensure(lock.text),
  ]);
  expect(a.hostDir).toBe(b.hostDir);
  expect(b.hostDir).toBe(c.hostDir);
  expect(fs.readdirSync(path.join(cfg.cacheDir, 'layers'))).toEqual([lock.sha256]);
  removeTree(a.hostDir);
  const cache = new LayerCache(cfg);
  expect(cache.find(lock.sha256)).toBeUndefined();
  const again = await cache.ensure(lock.text);
  expect(again.topLevel).toEqual(['tinyanswer', 'tinywrap']);
  expect(fs.readFileSync(path.join(again.hostDir, 'tinyanswer', '__init__.py'), 'utf8')).toBe('ANSWER = 42\n');
});

test('a wheel that no longer matches its lock is dependency_hash_mismatch', async () => {
  const dir = path.join(work, 'swapped');
  fs.mkdirSync(dir);
  buildWheel(dir, { name: 'swapme', version: '1.0', files: { 'swapme.py': 'X = 1\n' } });
  const own = await startPackageIndex(dir);
  try {
    const cfg = config({ PACKAGE_INDEX_URL: own.url, DEPENDENCY_CACHE_DIR: path.join(work, 'cache-swap') });
    const lock = await resolveLock(cfg, ['swapme']);
    // The same name and version, other bytes: what a compromised or careless index would serve.
    buildWheel(dir, { name: 'swapme', version: '1.0', files: { 'swapme.py': 'X = 2  # not what was locked\n' } });
    const err = await failure(new LayerCache(cfg).ensure(lock.text));
    expect(err).toBeInstanceOf(DependencyRejected);
    expect((err as DependencyRejected).code).toBe('dependency_hash_mismatch');
  } finally {
    await own.stop();
  }
});

test('undeclared_import: an error unguarded, a warning guarded, nothing for what the layer provides', () => {
  const found = undeclaredImports(
    [
      { module: 'tinyanswer', line: 3, col: 0, guarded: false },
      { module: 'yaml', line: 4, col: 0, guarded: false },
      { module: 'ujson', line: 6, col: 4, guarded: true },
    ],
    ['tinyanswer', 'tinywrap'],
  );
  expect(found.map((f) => [f.code, f.severity, f.line, f.col])).toEqual([
    ['undeclared_import', 'error', 4, 0],
    ['undeclared_import', 'warning', 6, 4],
  ]);
});
