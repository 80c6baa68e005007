/**
 * Builds the sandbox image locally (no registry is reachable): a minimal root filesystem holding
 * the host's Debian python3.11 with its stdlib and shared libraries, Debian's pyflakes (the
 * checker's linter) and packaging (its reader of PEP 508 requirements), plus the agent, the child runner and the static checker. The tag is a hash of every input, so a build runs only when an
 * input changed.
 */
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { sha256Hex } from './hash';
import type { SandboxLogger as Logger } from './logger';
import { SandboxInfraError } from './errors';
import { LAYER_PATH } from './spec';

/** Bump when the recipe below changes in a way the inputs do not show. */
const RECIPE_VERSION = '3';
export const IMAGE_REPO = 'taskflow-sandbox';
export const PYTHON_BIN = '/usr/bin/python3.11';
const STDLIB = '/usr/lib/python3.11';
/**
 * The system libraries a manylinux wheel may assume (the manylinux policy's list, without its
 * graphical ones: X11, GL, glib), so that wheels with native code (numpy needs libstdc++ and
 * libgcc_s) load here as on any manylinux host. Those the interpreter links are in the image anyway.
 */
const MANYLINUX_LIBS = [
  'libgcc_s.so.1',
  'libstdc++.so.6',
  'libm.so.6',
  'libdl.so.2',
  'librt.so.1',
  'libc.so.6',
  'libnsl.so.1',
  'libutil.so.1',
  'libpthread.so.0',
  'libresolv.so.2',
];
const LIB_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu'];
/**
 * Debian's python3-pyflakes and python3-packaging (pure Python, stdlib only), for the checker alone:
 * it appends their parent to sys.path. The child runner never sees them on its path.
 */
const CHECKER_PACKAGES: { dir: string; debian: string }[] = [
  { dir: '/usr/lib/python3/dist-packages/pyflakes', debian: 'python3-pyflakes' },
  { dir: '/usr/lib/python3/dist-packages/packaging', debian: 'python3-packaging' },
];
/**
 * What goes to /opt/taskflow in the image: the agent, child runner and checker, the child's seccomp
 * filter, and the registries they read (finding codes, forbidden syscalls).
 */
const AGENT_SRC_DIR = path.join(__dirname, 'image');
const AGENT_FILES: Record<string, string> = {
  'agent.py': path.join(AGENT_SRC_DIR, 'agent.py'),
  'child.py': path.join(AGENT_SRC_DIR, 'child.py'),
  'checker.py': path.join(AGENT_SRC_DIR, 'checker.py'),
  'syscall_filter.py': path.join(AGENT_SRC_DIR, 'syscall_filter.py'),
  'syscall-table.json': path.join(__dirname, 'syscall-table.json'),
  'finding-codes.json': path.join(__dirname, '..', 'domain', 'finding-codes.json'),
};
/** Parts of the stdlib user code has no business with inside a sandbox. */
const STDLIB_EXCLUDE = new Set([
  'test',
  'idlelib',
  'tkinter',
  'turtledemo',
  'ensurepip',
  'lib2to3',
  'site-packages',
  'dist-packages',
  'config-3.11-x86_64-linux-gnu',
  'pydoc_data',
  'venv',
  'distutils',
]);

const sha256File = (file: string): string => sha256Hex(fs.readFileSync(file));

function pythonFiles(root: string, exclude: Set<string>): string[] {
  const out: string[] = [];
  const walk = (dir: string, top: boolean) => {
    for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
      if ((top && exclude.has(ent.name)) || ent.name === '__pycache__') continue;
      const p = path.join(dir, ent.name);
      if (ent.isDirectory()) walk(p, false);
      else if (ent.isFile()) out.push(p);
    }
  };
  walk(root, true);
  return out.sort();
}

const stdlibFiles = (): string[] => pythonFiles(STDLIB, STDLIB_EXCLUDE);

function checkerPackageFiles(): string[] {
  return CHECKER_PACKAGES.flatMap(({ dir, debian }) => {
    if (!fs.existsSync(path.join(dir, '__init__.py'))) {
      throw new SandboxInfraError(`${dir} is missing: install it (apt-get install ${debian}), or run scripts/setup.sh`);
    }
    return pythonFiles(dir, new Set(['test']));
  });
}

function manylinuxLibs(): string[] {
  return MANYLINUX_LIBS.map((name) => {
    const found = LIB_DIRS.map((d) => path.join(d, name)).find((f) => fs.existsSync(f));
    if (!found)
      throw new SandboxInfraError(`${name} is missing from ${LIB_DIRS.join(' and ')}: the sandbox image needs it for manylinux wheels`);
    return found;
  });
}

/** The content hash that names the image: recipe, agent sources, interpreter, libraries and stdlib listing. */
export function imageInputsHash(): string {
  if (!fs.existsSync(PYTHON_BIN)) {
    throw new SandboxInfraError(
      `${PYTHON_BIN} is missing: install Debian's python3.11 (apt-get install python3.11), or run scripts/setup.sh`,
    );
  }
  const h = crypto.createHash('sha256');
  h.update(`recipe ${RECIPE_VERSION}\n`);
  for (const [f, src] of Object.entries(AGENT_FILES)) h.update(`${f} ${sha256File(src)}\n`);
  h.update(`python ${sha256File(PYTHON_BIN)}\n`);
  for (const f of manylinuxLibs()) h.update(`${f} ${sha256File(f)}\n`);
  for (const f of checkerPackageFiles()) h.update(`${f} ${sha256File(f)}\n`);
  for (const f of stdlibFiles()) {
    const st = fs.statSync(f);
    h.update(`${f} ${st.size} ${Math.floor(st.mtimeMs)}\n`);
  }
  return h.digest('hex').slice(0, 16);
}

export function imageTag(): string {
  return `${IMAGE_REPO}:${imageInputsHash()}`;
}

/** Shared libraries `ldd` says these ELF files need (including the loader). */
function sharedLibs(files: string[]): Set<string> {
  const libs = new Set<string>();
  for (const f of files) {
    let out = '';
    try {
      out = execFileSync('ldd', [f], { encoding: 'utf8' });
    } catch {
      continue; // not dynamic
    }
    for (const line of out.split('\n')) {
      const m = line.match(/=>\s+(\/\S+)/) ?? line.match(/^\s+(\/\S+)\s+\(/);
      if (m) libs.add(m[1]);
    }
  }
  return libs;
}

function copyInto(root: string, file: string): void {
  const dest = path.join(root, file);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.copyFileSync(fs.realpathSync(file), dest);
  fs.chmodSync(dest, fs.statSync(file).mode & 0o755);
}

function assembleRootfs(root: string): void {
  const stdlib = stdlibFiles();
  const extra = manylinuxLibs();
  const natives = [PYTHON_BIN, ...stdlib.filter((f) => f.endsWith('.so')), ...extra];
  for (const lib of new Set([...sharedLibs(natives), ...extra])) copyInto(root, lib);
  copyInto(root, PYTHON_BIN);
  fs.symlinkSync('python3.11', path.join(root, 'usr/bin/python3'));
  for (const f of stdlib) copyInto(root, f);
  for (const f of checkerPackageFiles()) copyInto(root, f);
  for (const [f, src] of Object.entries(AGENT_FILES)) {
    const dest = path.join(root, 'opt/taskflow', f);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.copyFileSync(src, dest);
    fs.chmodSync(dest, 0o644);
  }
  // Bytecode compiled here, checked by hash not mtime: the root is read-only and copies get new
  // mtimes, so without this every interpreter start recompiles the stdlib it imports (~0.5 s).
  for (const [dir, as] of [
    ['usr/lib/python3.11', STDLIB],
    ...CHECKER_PACKAGES.map(({ dir }) => [dir.slice(1), dir]),
    ['opt/taskflow', '/opt/taskflow'],
  ]) {
    execFileSync(
      PYTHON_BIN,
      ['-m', 'compileall', '-q', '-f', '-j', '0', '--invalidation-mode', 'unchecked-hash', '-d', as, path.join(root, dir)],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
  }
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/nonexistent\nnobody:x:65534:65534:nobody:/tmp:/nonexistent\n');
  fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  for (const d of ['tmp', 'proc', 'dev', 'sys', 'task', LAYER_PATH.slice(1)]) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
}

export async function imageExists(docker: Docker, tag: string): Promise<boolean> {
  try {
    await docker.getImage(tag).inspect();
    return true;
  } catch {
    return false;
  }
}

/** Builds the image unless an image with the same inputs hash exists. Returns the tag. */
export async function ensureImage(docker: Docker, log: Logger, tag = imageTag()): Promise<string> {
  if (await imageExists(docker, tag)) {
    log.debug('sandbox image present', { image: tag });
    return tag;
  }
  const started = Date.now();
  log.info('building sandbox image', { image: tag });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-rootfs-'));
  try {
    assembleRootfs(root);
    const tar = spawn('tar', ['-C', root, '--numeric-owner', '--owner=0', '--group=0', '-c', '.'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [repo, version] = tag.split(':');
    const stream = await docker.importImage(tar.stdout as unknown as string, { repo, tag: version });
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve()));
    });
    if (!(await imageExists(docker, tag))) throw new SandboxInfraError(`image import finished but ${tag} is missing`);
    log.info('sandbox image built', { image: tag, ms: Date.now() - started });
    return tag;
  } catch (err) {
    if (err instanceof SandboxInfraError) throw err;
    throw new SandboxInfraError(`building the sandbox image failed: ${(err as Error).message}`, err);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}
