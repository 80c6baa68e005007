#!/usr/bin/env node
// Builds dist/ (what the services, the workers, the container image and the `taskflow` bin run) when
// its inputs changed: `tsc -p tsconfig.build.json`, then every non-TypeScript file of the source
// folders copied alongside (files read at run time through __dirname: src/db/migrations/*.sql,
// sandbox/image/*.py, the JSON registries). The inputs' hash is kept in dist/.build-hash, so a
// re-run only hashes (like the sandbox image's content-hashed tag). `npm run build`; --force rebuilds.
// Plain CommonJS with node built-ins only: it runs before anything is compiled.
'use strict';
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
/** The folders compiled into dist/ (tsconfig.build.json's include). */
const SOURCE_DIRS = ['app', 'src', 'sandbox', 'workflows', 'activities', 'domain'];
/** Files whose change changes the output: the compiler settings, its version (the lock file), this script. */
const CONFIG_FILES = ['tsconfig.json', 'tsconfig.build.json', 'package-lock.json', 'scripts/build-dist.js'];
const DIST = path.join(ROOT, 'dist');
const HASH_FILE = '.build-hash';

/** Every file under the source folders, relative to ROOT, sorted (Python caches left out). */
function sourceFiles() {
  const out = [];
  const walk = (rel) => {
    for (const ent of fs.readdirSync(path.join(ROOT, rel), { withFileTypes: true })) {
      if (ent.name === '__pycache__') continue;
      const p = path.join(rel, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (ent.isFile()) out.push(p);
    }
  };
  for (const d of SOURCE_DIRS) walk(d);
  return out.sort();
}

function inputsHash(files) {
  const h = crypto.createHash('sha256');
  for (const f of [...CONFIG_FILES, ...files]) {
    h.update(f + '\0');
    h.update(fs.readFileSync(path.join(ROOT, f)));
    h.update('\0');
  }
  return h.digest('hex');
}

/**
 * Makes dist/ match the sources. Returns 'current' or 'built'. Builds into a fresh directory, then
 * swaps it in, so an interrupted build never leaves a half dist/ that looks current.
 */
function ensureBuilt({ force = false, log = (m) => process.stderr.write(`[build] ${m}\n`) } = {}) {
  const files = sourceFiles();
  const hash = inputsHash(files);
  let have = '';
  try {
    have = fs.readFileSync(path.join(DIST, HASH_FILE), 'utf8').trim();
  } catch {
    // no dist/ yet
  }
  if (!force && have === hash) return 'current';
  const t = Date.now();
  const tmp = path.join(ROOT, `.dist-build-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    execFileSync(
      process.execPath,
      [require.resolve('typescript/bin/tsc', { paths: [ROOT] }), '-p', 'tsconfig.build.json', '--outDir', tmp],
      {
        cwd: ROOT,
        stdio: 'inherit',
      },
    );
    for (const f of files) {
      if (f.endsWith('.ts')) continue;
      const to = path.join(tmp, f);
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.copyFileSync(path.join(ROOT, f), to);
    }
    fs.writeFileSync(path.join(tmp, HASH_FILE), hash + '\n');
    fs.rmSync(DIST, { recursive: true, force: true });
    fs.renameSync(tmp, DIST);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  log(`dist/ built in ${((Date.now() - t) / 1000).toFixed(1)}s (inputs ${hash.slice(0, 12)})`);
  return 'built';
}

module.exports = { ensureBuilt, DIST };

if (require.main === module) {
  try {
    const r = ensureBuilt({ force: process.argv.includes('--force') });
    if (r === 'current') process.stderr.write('[build] dist/ is current with its sources\n');
  } catch (err) {
    process.stderr.write(`[build] ERROR: ${err && err.message ? err.message : err}\n`);
    process.exit(1);
  }
}
