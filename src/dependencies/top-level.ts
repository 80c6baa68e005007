/**
 * The importable top-level names a layer provides, read from what uv unpacked: every installed dist's
 * RECORD (the files it owns) and the layer directory's own top-level entries. Never imports anything.
 */
import fs from 'node:fs';
import path from 'node:path';

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** `six.py`, `_cffi_backend.cpython-311-x86_64-linux-gnu.so`, `mod.abi3.so`, `pkg` (a directory). */
function moduleOf(entry: string, isDir: boolean): string | undefined {
  if (isDir) return IDENT.test(entry) && entry !== '__pycache__' && entry !== 'bin' ? entry : undefined;
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(\.[A-Za-z0-9_-]+)*\.(py|pyc|so)$/.exec(entry);
  return m ? m[1] : undefined;
}

/** The RECORD paths of each `*.dist-info` (CSV: a path is quoted when it holds a comma). */
function recordPaths(siteDir: string, distInfo: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(path.join(siteDir, distInfo, 'RECORD'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => (line.startsWith('"') ? line.slice(1, line.indexOf('"', 1)) : line.slice(0, line.indexOf(','))));
}

export function topLevelNames(siteDir: string): string[] {
  const names = new Set<string>();
  const entries = fs.readdirSync(siteDir, { withFileTypes: true });
  for (const e of entries) {
    if (e.name.endsWith('.dist-info') && e.isDirectory()) {
      for (const p of recordPaths(siteDir, e.name)) {
        const parts = p.split('/');
        if (parts[0] === '..' || parts[0].endsWith('.dist-info') || parts[0].endsWith('.data')) continue;
        const m = moduleOf(parts[0], parts.length > 1);
        if (m) names.add(m);
      }
      continue;
    }
    if (e.name.endsWith('.data') || e.name.startsWith('.')) continue;
    const m = moduleOf(e.name, e.isDirectory());
    if (m) names.add(m);
  }
  return [...names].sort();
}
