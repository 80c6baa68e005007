/**
 * A real package index on loopback for the dependency tests: wheels (and an sdist) the test builds
 * itself, served by pypiserver (setup.sh installs it, pinned, in the tools venv) with
 * `--disable-fallback`, so an unknown name is a 404 and never a redirect to a public index. Started
 * and stopped by pid.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, track, type Child } from './processes';

const ROOT = path.resolve(__dirname, '..', '..');
const TOOLS = path.join(process.env.DATA_DIR ?? path.join(ROOT, '.data'), 'tools-venv', 'bin');
export const UV_PATH = path.join(TOOLS, 'uv');
const PYTHON = '/usr/bin/python3.11';

/** Writes a wheel (a zip with the files, METADATA, WHEEL and a RECORD of their sha256) with the standard library's zipfile. */
const WHEEL_WRITER = String.raw`
import base64, hashlib, json, sys, zipfile
s = json.load(sys.stdin)
di = f"{s['dist']}-{s['version']}.dist-info"
files = {p: base64.b64decode(b) for p, b in s["files"].items()}
meta = f"Metadata-Version: 2.1\nName: {s['name']}\nVersion: {s['version']}\n" + "".join(f"Requires-Dist: {r}\n" for r in s["requires"])
files[f"{di}/METADATA"] = meta.encode()
files[f"{di}/WHEEL"] = f"Wheel-Version: 1.0\nGenerator: taskflow-test\nRoot-Is-Purelib: {s['purelib']}\nTag: {s['tag']}\n".encode()
record = []
for p, b in files.items():
    h = base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
    record.append(f"{p},sha256={h},{len(b)}")
record.append(f"{di}/RECORD,,")
files[f"{di}/RECORD"] = ("\n".join(record) + "\n").encode()
with zipfile.ZipFile(s["out"], "w", zipfile.ZIP_DEFLATED) as z:
    for p, b in files.items():
        z.writestr(p, b)
`;

export interface WheelSpec {
  name: string;
  version: string;
  /** Path inside the wheel → content. */
  files: Record<string, string | Buffer>;
  requires?: string[];
  /** Default `py3-none-any`. */
  tag?: string;
}

/** Builds `<dir>/<dist>-<version>-<tag>.whl`; returns its path. */
export function buildWheel(dir: string, w: WheelSpec): string {
  const dist = w.name.replace(/[-.]+/g, '_');
  const tag = w.tag ?? 'py3-none-any';
  const out = path.join(dir, `${dist}-${w.version}-${tag}.whl`);
  const spec = {
    name: w.name,
    dist,
    version: w.version,
    tag,
    purelib: tag.endsWith('-none-any') ? 'true' : 'false',
    requires: w.requires ?? [],
    files: Object.fromEntries(Object.entries(w.files).map(([p, c]) => [p, Buffer.from(c).toString('base64')])),
    out,
  };
  execFileSync(PYTHON, ['-c', WHEEL_WRITER], { input: JSON.stringify(spec) });
  return out;
}

/**
 * A wheel with a C extension module `<module>` (functions `add(a, b)` and `answer()`), compiled here with
 * gcc against the sandbox interpreter's headers and tagged for CPython 3.11 on manylinux x86_64.
 */
export function buildCExtensionWheel(dir: string, name: string, version: string, module: string, answer: number): string {
  const build = fs.mkdtempSync(path.join(dir, '.cbuild-'));
  const src = path.join(build, `${module}.c`);
  fs.writeFileSync(
    src,
    `#define PY_SSIZE_T_CLEAN
#include <Python.h>
static PyObject *add(PyObject *self, PyObject *args) { long a, b; if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL; return PyLong_FromLong(a + b); }
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(${answer}); }
static PyMethodDef methods[] = { {"add", add, METH_VARARGS, NULL}, {"answer", answer, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL} };
static struct PyModuleDef mod = { PyModuleDef_HEAD_INIT, "${module}", NULL, -1, methods };
PyMODINIT_FUNC PyInit_${module}(void) { return PyModule_Create(&mod); }
`,
  );
  const so = path.join(build, `${module}.cpython-311-x86_64-linux-gnu.so`);
  execFileSync('gcc', ['-shared', '-fPIC', '-O2', '-I/usr/include/python3.11', src, '-o', so]);
  const out = buildWheel(dir, {
    name,
    version,
    tag: 'cp311-cp311-manylinux_2_17_x86_64',
    files: { [path.basename(so)]: fs.readFileSync(so) },
  });
  fs.rmSync(build, { recursive: true, force: true });
  return out;
}

/** An sdist only (`<name>-<version>.tar.gz`) whose setup.py writes `marker` if anything ever runs it. */
export function buildSdist(dir: string, name: string, version: string, marker: string): string {
  const base = `${name}-${version}`;
  const out = path.join(dir, `${base}.tar.gz`);
  execFileSync(PYTHON, [
    '-c',
    String.raw`
import io, sys, tarfile
out, base, name, version, marker = sys.argv[1:]
files = {
  f"{base}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
  f"{base}/setup.py": f"open({marker!r}, 'w').write('setup.py ran')\nfrom setuptools import setup\nsetup(name={name!r}, version={version!r})\n",
}
with tarfile.open(out, "w:gz") as t:
    for p, c in files.items():
        b = c.encode(); i = tarfile.TarInfo(p); i.size = len(b); t.addfile(i, io.BytesIO(b))
`,
    out,
    base,
    name,
    version,
    marker,
  ]);
  return out;
}

export interface PackageIndex {
  /** `http://127.0.0.1:<port>/simple/` */
  url: string;
  pid(): number | undefined;
  stop(): Promise<void>;
  /** Starts it again on the same port and directory. */
  start(): Promise<void>;
}

/** pypiserver serving `dir` on a free loopback port; resolves once `/simple/` answers. */
export async function startPackageIndex(dir: string): Promise<PackageIndex> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/simple/`;
  let proc: Child | undefined;
  const start = async () => {
    const child = spawn(
      path.join(TOOLS, 'pypi-server'),
      ['run', '--host', '127.0.0.1', '--port', String(port), '--disable-fallback', '--backend', 'simple-dir', '--hash-algo', 'sha256', dir],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    proc = track(child);
    const deadline = Date.now() + 30000;
    for (;;) {
      const ok = await fetch(url).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return;
      if (child.exitCode !== null) throw new Error(`pypiserver exited: ${proc.log()}`);
      if (Date.now() > deadline) {
        await proc.kill();
        throw new Error(`pypiserver did not answer within 30 s: ${proc.log()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await start();
  return {
    url,
    pid: () => proc?.pid,
    start,
    stop: async () => {
      await proc?.stop();
    },
  };
}
