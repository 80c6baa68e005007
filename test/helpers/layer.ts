/**
 * Dependency layers built on this host for tests and benchmarks: directories laid out like unpacked
 * wheels, with a pure-Python package, a C extension and a C++ one compiled against the sandbox's own
 * interpreter headers (Debian's python3.11), and a network client's import-time probe.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeReadOnly } from '../../src/dependencies';

export const PY_INCLUDE = '/usr/include/python3.11';
export const EXT_SUFFIX = execFileSync('/usr/bin/python3.11', ['-c', 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))'])
  .toString()
  .trim();

/** Builds a layer directory the way an unpacked set of wheels looks: packages and modules at its top. */
export function buildLayer(dir: string, answer: number): void {
  fs.mkdirSync(path.join(dir, 'tinypkg'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'tinypkg', '__init__.py'), `from .core import answer\n__all__ = ["answer"]\n`);
  fs.writeFileSync(path.join(dir, 'tinypkg', 'core.py'), `def answer():\n    return ${answer}\n`);
  // A network client's import-time probe (urllib3's, as `import requests` runs it), and its use.
  fs.writeFileSync(
    path.join(dir, 'netclient.py'),
    [
      'import socket',
      '',
      '',
      'def _has_ip(family, host):  # urllib3.util.util._has_ipv6, for either family',
      '    sock = None',
      '    has = False',
      '    try:',
      '        sock = socket.socket(family)',
      '        sock.bind((host, 0))',
      '        has = True',
      '    except Exception:',
      '        pass',
      '    if sock:',
      '        sock.close()',
      '    return has',
      '',
      '',
      'HAS_IPV6 = _has_ip(socket.AF_INET6, "::1")',
      'HAS_IPV4 = _has_ip(socket.AF_INET, "127.0.0.1")',
      '',
      '',
      'def create_connection(host, port):',
      '    return socket.create_connection((host, port), timeout=1)',
      '',
      '',
      'def connect_unix(path):',
      '    return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect(path)',
      '',
      '',
      'def inet_socket():',
      '    return socket.socket(socket.AF_INET, socket.SOCK_STREAM)',
      '',
    ].join('\n'),
  );
  // Named like stdlib modules: the stdlib comes first on the path, so these are never imported.
  fs.writeFileSync(path.join(dir, 'json.py'), 'SHADOWED = True\n');
  fs.mkdirSync(path.join(dir, 'textwrap'));
  fs.writeFileSync(path.join(dir, 'textwrap', '__init__.py'), 'SHADOWED = True\n');
  const src = fs.mkdtempSync(path.join(os.tmpdir(), 'layer-src-'));
  try {
    fs.writeFileSync(
      path.join(src, 'fastmath.c'),
      [
        '#define PY_SSIZE_T_CLEAN',
        '#include <Python.h>',
        'static PyObject *add(PyObject *self, PyObject *args) {',
        '    long a, b;',
        '    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;',
        '    return PyLong_FromLong(a + b);',
        '}',
        'static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "a + b, in C"}, {NULL, NULL, 0, NULL}};',
        'static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "fastmath", NULL, -1, methods};',
        'PyMODINIT_FUNC PyInit_fastmath(void) { return PyModule_Create(&module); }',
        '',
      ].join('\n'),
    );
    // C++ with the standard library: needs libstdc++ and libgcc_s in the image, as numpy's wheels do.
    fs.writeFileSync(
      path.join(src, 'cppstr.cpp'),
      [
        '#define PY_SSIZE_T_CLEAN',
        '#include <Python.h>',
        '#include <algorithm>',
        '#include <stdexcept>',
        '#include <string>',
        'static PyObject *reverse(PyObject *self, PyObject *args) {',
        '    const char *s;',
        '    if (!PyArg_ParseTuple(args, "s", &s)) return NULL;',
        '    try {',
        '        std::string t(s);',
        '        if (t.empty()) throw std::runtime_error("empty");  // unwinding needs libgcc_s',
        '        std::reverse(t.begin(), t.end());',
        '        return PyUnicode_FromString(t.c_str());',
        '    } catch (const std::exception &e) {',
        '        PyErr_SetString(PyExc_ValueError, e.what());',
        '        return NULL;',
        '    }',
        '}',
        'static PyMethodDef methods[] = {{"reverse", reverse, METH_VARARGS, "reversed, in C++"}, {NULL, NULL, 0, NULL}};',
        'static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cppstr", NULL, -1, methods};',
        'PyMODINIT_FUNC PyInit_cppstr(void) { return PyModule_Create(&module); }',
        '',
      ].join('\n'),
    );
    execFileSync('gcc', [
      '-shared',
      '-fPIC',
      '-O2',
      `-I${PY_INCLUDE}`,
      path.join(src, 'fastmath.c'),
      '-o',
      path.join(dir, `fastmath${EXT_SUFFIX}`),
    ]);
    execFileSync('g++', [
      '-shared',
      '-fPIC',
      '-O2',
      `-I${PY_INCLUDE}`,
      path.join(src, 'cppstr.cpp'),
      '-o',
      path.join(dir, `cppstr${EXT_SUFFIX}`),
    ]);
  } finally {
    fs.rmSync(src, { recursive: true, force: true });
  }
  makeReadOnly(dir);
}

/** A layer id (the interface wants a sha256 in hex) for a test's name. */
export const layerId = (name: string): string => crypto.createHash('sha256').update(name).digest('hex');
