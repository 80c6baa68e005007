/**
 * A handler's dependency layer at run time, through the real engine and runsc: a directory of
 * packages built here (a pure-Python package, a C extension and a C++ one, compiled against the
 * sandbox's own interpreter headers), made read-only, mounted read-only at /deps and appended to the
 * child's sys.path after the stdlib.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NEAR_MEMORY_LIMIT, SandboxInfraError, sha256, type DependencyLayer, type RunOutcome, type Sandbox } from '../sandbox';
import { buildLayer, EXT_SUFFIX, layerId, PY_INCLUDE } from './helpers/layer';
import { makeReadOnly, removeTree } from '../src/dependencies';
import { startSandbox, testConfig } from './helpers/sandbox';

const config = testConfig();
let sandbox: Sandbox;
let root: string;
let layer: DependencyLayer;

/** Every file under `dir` with its mode and content hash: what "unchanged" means for a layer. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name);
      const st = fs.lstatSync(p);
      const rel = path.relative(dir, p);
      if (ent.isDirectory()) {
        out[rel + '/'] = st.mode.toString(8);
        walk(p);
      } else out[rel] = `${st.mode.toString(8)} ${crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;
    }
  };
  walk(dir);
  return out;
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-layers-'));
  fs.chmodSync(root, 0o755);
  const dir = path.join(root, 'a');
  buildLayer(dir, 42);
  // World-writable on the host, so that only the read-only mount can refuse writes here.
  fs.chmodSync(dir, 0o755);
  fs.mkdirSync(path.join(dir, 'scratch'), { mode: 0o777 });
  fs.chmodSync(path.join(dir, 'scratch'), 0o777);
  fs.writeFileSync(path.join(dir, 'scratch', 'file'), 'original\n', { mode: 0o666 });
  fs.chmodSync(path.join(dir, 'scratch', 'file'), 0o666);
  fs.chmodSync(dir, 0o555);
  layer = { id: layerId('a'), hostDir: dir };
  sandbox = await startSandbox(config, { validationPool: true, keyedLimits: config.taskLimits });
}, 120000);

afterAll(async () => {
  await sandbox?.close();
  if (root) removeTree(root);
});

const USES_LAYER = [
  'import sys',
  'import fastmath',
  'import cppstr',
  'import tinypkg',
  '',
  '',
  'def handler(payload):',
  '    try:',
  '        cppstr.reverse("")',
  '        unwound = False',
  '    except ValueError as exc:',
  '        unwound = str(exc) == "empty"',
  '    return {"answer": tinypkg.answer(), "sum": fastmath.add(payload["a"], payload["b"]),',
  '            "reversed": cppstr.reverse(payload["s"]), "unwound": unwound,',
  '            "files": [m.__file__ for m in (tinypkg, fastmath, cppstr)], "path": sys.path}',
  '',
].join('\n');

function expectUsesLayer(o: RunOutcome): void {
  expect(o.status).toBe('ok');
  expect(o.payloads[0].result).toEqual({
    answer: 42,
    sum: 5,
    reversed: 'xobdnas',
    unwound: true,
    files: ['/deps/tinypkg/__init__.py', `/deps/fastmath${EXT_SUFFIX}`, `/deps/cppstr${EXT_SUFFIX}`],
    // After the stdlib, last.
    path: ['/usr/lib/python311.zip', '/usr/lib/python3.11', '/usr/lib/python3.11/lib-dynload', '/deps'],
  });
}

const run = { source: USES_LAYER, fileName: 'uses_layer.py', payloads: [{ a: 2, b: 3, s: 'sandbox' }] };

describe('a handler imports its layer', () => {
  test('validate: a pure-Python package, a C extension and a C++ one (libstdc++, unwinding) answer', async () => {
    const o = await sandbox.validate({ ...run, layer });
    expectUsesLayer(o);
    expect(o.spec.layer).toBe(layer.id);
    expect(o.forbidden).toEqual([]);
    expect(o.syscalls).toEqual([]);
  });

  test('runCold and runKeyed too', async () => {
    expectUsesLayer(await sandbox.runCold({ ...run, layer }));
    expectUsesLayer(await sandbox.runKeyed({ owner: 'alice', sha256: sha256(USES_LAYER) }, { ...run, layer }));
  });

  test('without the layer the same file fails to load: nothing else puts packages on the path', async () => {
    const o = await sandbox.validate(run);
    expect(o.status).toBe('handler_error');
    expect(o.load.error?.message).toMatch(/No module named 'fastmath'/);
    expect(o.spec.layer).toBeUndefined();
  });

  test("a layer that is not on this host is an infrastructure failure, not the handler's", async () => {
    await expect(sandbox.validate({ ...run, layer: { id: layerId('gone'), hostDir: path.join(root, 'gone') } })).rejects.toBeInstanceOf(
      SandboxInfraError,
    );
    await expect(
      sandbox.runKeyed({ owner: 'alice', sha256: sha256(USES_LAYER) }, { ...run, layer: { id: 'not-a-sha', hostDir: layer.hostDir } }),
    ).rejects.toThrow(/sha256/);
    // A layer holding a symbolic link (wheels cannot): refused, since the hook judges layer paths as written.
    const linked = path.join(root, 'linked');
    fs.mkdirSync(path.join(linked, 'pkg'), { recursive: true });
    fs.symlinkSync('/proc/1/environ', path.join(linked, 'pkg', 'environ'));
    await expect(sandbox.validate({ ...run, layer: { id: layerId('linked'), hostDir: linked } })).rejects.toThrow(
      /holds a symbolic link .*pkg\/environ/,
    );
    // The engine is fine: health does not report a failed container start for any of them.
    expect((await sandbox.health()).lastStartFailed).toBe(false);
  });
});

test('a module of the layer named like a stdlib module never shadows it', async () => {
  const src = [
    'import json',
    'import textwrap',
    '',
    '',
    'def handler(payload):',
    '    return {"json": [json.__file__, hasattr(json, "SHADOWED")], "textwrap": [textwrap.__file__, hasattr(textwrap, "SHADOWED")],',
    '            "dumps": json.dumps({"a": 1})}',
    '',
  ].join('\n');
  const o = await sandbox.validate({ source: src, fileName: 'stdlib.py', payloads: [{}], layer });
  expect(o.status).toBe('ok');
  expect(o.payloads[0].result).toEqual({
    json: ['/usr/lib/python3.11/json/__init__.py', false],
    textwrap: ['/usr/lib/python3.11/textwrap.py', false],
    dumps: '{"a": 1}',
  });
});

test('a handler cannot write into its layer: the mount is read-only (EROFS), and the layer is unchanged on the host', async () => {
  const before = snapshot(layer.hostDir);
  // Calls the audit hook lets through to the kernel (an open() for writing it stops itself, below),
  // on a world-writable directory and file (only the mount refuses) and on read-only ones.
  const src = [
    'import os',
    '',
    '',
    'def attempt(fn):',
    '    try:',
    '        fn()',
    '        return "done"',
    '    except OSError as exc:',
    '        return exc.errno',
    '',
    '',
    'def handler(payload):',
    '    return {',
    '        "remove": attempt(lambda: os.remove("/deps/scratch/file")),',
    '        "truncate": attempt(lambda: os.truncate("/deps/scratch/file", 0)),',
    '        "rename": attempt(lambda: os.rename("/deps/scratch/file", "/deps/scratch/moved")),',
    '        "mkdir": attempt(lambda: os.mkdir("/deps/scratch/new")),',
    '        "symlink": attempt(lambda: os.symlink("/tmp", "/deps/scratch/tmp")),',
    '        "remove_package": attempt(lambda: os.remove("/deps/tinypkg/core.py")),',
    '        "chmod_package": attempt(lambda: os.chmod("/deps/tinypkg/core.py", 0o777)),',
    '    }',
    '',
  ].join('\n');
  const o = await sandbox.validate({ source: src, fileName: 'write_layer.py', payloads: [{}], layer });
  expect(o.status).toBe('ok');
  const [EPERM, EACCES, EROFS] = [1, 13, 30];
  const result = o.payloads[0].result as Record<string, unknown>;
  expect(result).toMatchObject({ remove: EROFS, truncate: EROFS, rename: EROFS, mkdir: EROFS, symlink: EROFS });
  // Read-only files of root's: refused whichever check comes first.
  expect([EROFS, EACCES]).toContain(result.remove_package);
  expect([EROFS, EPERM]).toContain(result.chmod_package);

  const opened = await sandbox.validate({
    source:
      'def handler(payload):\n    with open("/deps/tinypkg/core.py", "a") as f:\n        f.write("def answer():\\n    return 0\\n")\n',
    fileName: 'append_layer.py',
    payloads: [{}],
    layer,
  });
  expect(opened.status).toBe('forbidden');
  expect(opened.forbidden.map((f) => f.event)).toEqual(['open']);
  expect(snapshot(layer.hostDir)).toEqual(before);
});

describe('keyed containers are reused only for the same owner, file and layer', () => {
  test('same layer: the same container; another layer id: another container, with its own packages', async () => {
    const other = path.join(root, 'b');
    buildLayer(other, 7);
    const layerB = { id: layerId('b'), hostDir: other };
    const key = { owner: 'bob', sha256: sha256(USES_LAYER) };
    const a1 = await sandbox.runKeyed(key, { ...run, layer });
    const a2 = await sandbox.runKeyed(key, { ...run, layer });
    const b1 = await sandbox.runKeyed(key, { ...run, layer: layerB });
    const b2 = await sandbox.runKeyed(key, { ...run, layer: layerB });
    const none = await sandbox.runKeyed(key, run);
    expect([a1, a2, b1, b2].map((o) => (o.payloads[0].result as { answer: number }).answer)).toEqual([42, 42, 7, 7]);
    expect(a2.spec.containerId).toBe(a1.spec.containerId);
    expect(b2.spec.containerId).toBe(b1.spec.containerId);
    expect(b1.spec.containerId).not.toBe(a1.spec.containerId);
    expect([a1.spec.layer, b1.spec.layer]).toEqual([layer.id, layerB.id]);
    // The same file with no layer: not any of the layered containers, and it cannot import them.
    expect([a1.spec.containerId, b1.spec.containerId]).not.toContain(none.spec.containerId);
    expect(none.status).toBe('handler_error');
    // The same layer under another owner: a container of its own.
    const mallory = await sandbox.runKeyed({ owner: 'mallory', sha256: key.sha256 }, { ...run, layer });
    expect(mallory.status).toBe('ok');
    expect([a1.spec.containerId, b1.spec.containerId]).not.toContain(mallory.spec.containerId);
  });
});

describe('network: probing for it is harmless, using it is forbidden behaviour', () => {
  const use = (call: string) =>
    sandbox.validate({
      source: `import netclient\n\n\ndef handler(payload):\n    return ${call}\n`,
      fileName: 'net.py',
      payloads: [{}],
      layer,
    });

  test("a package's import-time probe (urllib3's IPv6 check) finds no network; nothing is reported, no system call refused", async () => {
    const o = await use('{"ipv6": netclient.HAS_IPV6, "ipv4": netclient.HAS_IPV4}');
    expect(o.status).toBe('ok');
    expect(o.payloads[0].result).toEqual({ ipv6: false, ipv4: false });
    expect(o.forbidden).toEqual([]);
    expect(o.syscalls).toEqual([]);
  });

  test('creating an internet socket fails as on a host without a network (EAFNOSUPPORT), unreported', async () => {
    const o = await sandbox.validate({
      source: [
        'import netclient',
        '',
        '',
        'def handler(payload):',
        '    try:',
        '        netclient.inet_socket()',
        '    except OSError as exc:',
        '        return {"errno": exc.errno, "message": exc.strerror}',
        '',
      ].join('\n'),
      fileName: 'net.py',
      payloads: [{}],
      layer,
    });
    expect(o.status).toBe('ok');
    expect(o.payloads[0].result).toEqual({ errno: 97, message: 'Address family not supported by protocol' });
    expect(o.forbidden).toEqual([]);
    expect(o.syscalls).toEqual([]);
  });

  test('connecting is forbidden behaviour: a client connection (it resolves first) and a unix socket connect', async () => {
    const client = await use('netclient.create_connection("127.0.0.1", 9)');
    expect(client.status).toBe('forbidden');
    expect(client.forbidden.map((f) => f.event)).toEqual(['socket.getaddrinfo']);
    expect(client.payloads[0].error?.type).toBe('PermissionError');
    const unix = await use('netclient.connect_unix("/tmp/nothing.sock")');
    expect(unix.status).toBe('forbidden');
    expect(unix.forbidden.map((f) => f.event)).toEqual(['socket.connect']);
  });
});

describe('a layer with a big native library and the keyed near-memory-limit rule', () => {
  const BLOB_MIB = 48;
  /** A C extension holding BLOB_MIB of initialised read-only data, touched as it loads: file-backed pages, as numpy's OpenBLAS maps. */
  function buildBigLayer(dir: string): void {
    fs.mkdirSync(dir);
    const src = path.join(dir, 'bigblob.c');
    fs.writeFileSync(
      src,
      [
        '#define PY_SSIZE_T_CLEAN',
        '#include <Python.h>',
        `static const unsigned char blob[${BLOB_MIB} << 20] = {1, 2, 3};`,
        'static long touch(void) {',
        '    long sum = 0;',
        '    for (size_t i = 0; i < sizeof blob; i += 4096) sum += ((volatile const unsigned char *)blob)[i];',
        '    return sum;',
        '}',
        'static PyMethodDef methods[] = {{NULL, NULL, 0, NULL}};',
        'static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "bigblob", NULL, -1, methods};',
        'PyMODINIT_FUNC PyInit_bigblob(void) {',
        '    PyObject *m = PyModule_Create(&module);',
        '    if (m && PyModule_AddIntConstant(m, "touched", touch()) < 0) { Py_DECREF(m); return NULL; }',
        '    return m;',
        '}',
        '',
      ].join('\n'),
    );
    execFileSync('gcc', ['-shared', '-fPIC', '-O2', `-I${PY_INCLUDE}`, src, '-o', path.join(dir, `bigblob${EXT_SUFFIX}`)]);
    fs.rmSync(src);
    makeReadOnly(dir);
  }

  test('its load does not retire the container after every call; a run that itself comes near the limit still does', async () => {
    const dir = path.join(root, 'big');
    buildBigLayer(dir);
    const big = { id: layerId('big'), hostDir: dir };
    const src = [
      'import bigblob',
      '',
      '',
      'def handler(payload):',
      '    block = bytearray(payload["mib"] << 20)',
      '    block[::4096] = b"x" * len(block[::4096])',
      '    return {"touched": bigblob.touched, "mib": len(block) >> 20}',
      '',
    ].join('\n');
    const key = { owner: 'carol', sha256: sha256(src) };
    const call = (mib: number) => sandbox.runKeyed(key, { source: src, fileName: 'big.py', payloads: [{ mib }], layer: big });
    const threshold = NEAR_MEMORY_LIMIT * config.taskLimits.memoryMiB * 1024;
    const first = await call(0);
    const second = await call(1);
    expect([first.status, second.status]).toEqual(['ok', 'ok']);
    // The library's pages count under gVisor: the process's peak is past the rule's share of the limit...
    expect(first.peakMemoryKiB).toBeGreaterThan(threshold);
    expect(first.load.memoryKiB).toBeGreaterThanOrEqual(BLOB_MIB * 1024);
    // ...yet that is loading, the same in every container: the warm one served the next call.
    expect(second.spec.containerId).toBe(first.spec.containerId);
    expect(second.load.memoryKiB).toBeUndefined(); // not loaded again
    // A run that grows past the share on top of what loading took: retired, the next call gets a new one.
    const mib = Math.ceil((threshold - (second.peakMemoryKiB - first.load.memoryKiB!)) / 1024) + 4; // well short of an OOM kill
    const grown = await call(mib);
    const after = await call(0);
    expect([grown.status, after.status]).toEqual(['ok', 'ok']);
    expect(grown.spec.containerId).toBe(first.spec.containerId);
    expect(grown.peakMemoryKiB - first.load.memoryKiB!).toBeGreaterThan(threshold);
    expect(after.spec.containerId).not.toBe(grown.spec.containerId);
  });
});
