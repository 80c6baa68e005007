/**
 * Unit tests of the static checker's logic (sandbox/image/checker.py), run with the host's
 * python3.11 exactly as the sandbox runs it (`-I -S`). The checker only parses: nothing here
 * executes a task file. Running it inside the container is the integration suite's job.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CORPUS, CORPUS_WARNINGS, corpusFiles } from './helpers/corpus';

const PYTHON = '/usr/bin/python3.11';
const CHECKER = path.join(__dirname, '..', 'sandbox', 'image', 'checker.py');
const FIXTURES = path.join(__dirname, 'fixtures', 'tasks');
const MAX_BYTES = 256 * 1024;

type Severity = 'error' | 'warning';
interface Finding {
  code: string;
  severity: Severity;
  message: string;
  line?: number;
  col?: number;
  snippet?: string;
}
interface Report {
  findings: Finding[];
  test_payloads: unknown[] | null;
  external_imports: { module: string; line: number; col: number; guarded: boolean }[];
  script?: { dependencies: string[]; requires_python?: string; line: number };
}
interface CheckOptions {
  fileName?: string;
  maxBytes?: number;
  policy?: Record<string, 'error' | 'warning' | 'off'>;
}

function runRaw(request: unknown) {
  const res = spawnSync(PYTHON, ['-I', '-S', CHECKER], {
    input: JSON.stringify(request),
    timeout: 30_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return { status: res.status, stdout: res.stdout.toString('utf8'), stderr: res.stderr.toString('utf8') };
}

function check(source: string | Buffer, opts: CheckOptions = {}): Report {
  const res = runRaw({
    source_b64: Buffer.from(source).toString('base64'),
    file_name: opts.fileName ?? 'task.py',
    max_bytes: opts.maxBytes ?? MAX_BYTES,
    ...(opts.policy ? { policy: opts.policy } : {}),
  });
  if (res.status !== 0) throw new Error(`checker exited ${res.status}: ${res.stderr}`);
  const lines = res.stdout.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1); // exactly one JSON line
  return JSON.parse(lines[0]) as Report;
}

const fixture = (name: string) => fs.readFileSync(path.join(FIXTURES, name));
const checkFixture = (name: string) => check(fixture(name), { fileName: name });
const bySeverity = (r: Report, severity: Severity) =>
  [...new Set(r.findings.filter((f) => f.severity === severity).map((f) => f.code))].sort();
const find = (r: Report, code: string, line?: number) =>
  r.findings.filter((f) => f.code === code && (line === undefined || f.line === line));
/** A file that is fine except for `body`: a valid handler first, so only the body's findings show. */
const withHandler = (body: string) => `def handler(payload):\n    return payload\n${body}\n`;

describe('fixtures: every task file under test/fixtures/tasks has an expected verdict', () => {
  // error codes, warning codes
  const expected: Record<string, [string[], string[]]> = {
    'good_async.py': [[], []],
    'good_sync.py': [[], []],
    'good_with_test_payloads.py': [[], []],
    'no_handler.py': [['handler_missing'], []],
    'handler_not_callable.py': [['handler_not_function'], []],
    'wrong_arity.py': [['handler_arity'], []],
    'zero_arity.py': [['handler_arity'], []],
    'syntax_error.py': [['syntax_error'], []],
    'handler_raises.py': [[], []],
    'non_json_result.py': [[], []],
    // Runtime-hostile files: most are only stoppable at run time, and the checker says nothing.
    'cpu_spin.py': [[], []],
    'sleep_forever.py': [[], []],
    'import_loop.py': [[], ['import_time_work']],
    'memory_bomb.py': [[], []],
    'fork_bomb.py': [['forbidden_call'], []],
    'thread_bomb.py': [[], ['risky_import']],
    'disk_fill.py': [[], []],
    'fd_exhaust.py': [[], []],
    'output_flood.py': [[], []],
    'huge_result.py': [[], []],
    'regex_backtrack.py': [[], []],
    'subprocess_shell.py': [['forbidden_call', 'forbidden_import'], []],
    'read_host_files.py': [['forbidden_import'], []],
    'read_env.py': [[], []],
    'connect_localhost.py': [['forbidden_import'], []],
    'write_outside_tmp.py': [[], []],
    'kill_parent.py': [['forbidden_call'], ['risky_import']], // os.kill in the handler's body; signal is only a warning
    'ctypes_syscall.py': [['forbidden_import'], []],
    'sys_exit.py': [[], []],
    'os_exit.py': [[], ['risky_call']],
    'exit_at_import.py': [[], []], // Python's own SystemExit at load: the sandbox run rejects it
    'print_fake_success.py': [[], []],
    // Introspection and run-time imports are warnings: the run stops what they reach
    // (test/sandbox-hostile.test.ts runs these).
    'forbidden_aliases.py': [['forbidden_import'], ['metaprogramming', 'risky_call', 'risky_import']],
    'dunder_escape.py': [[], ['metaprogramming']],
    'evade_posix.py': [[], ['metaprogramming', 'risky_call']],
    'evade_importlib.py': [[], ['metaprogramming']],
    'top_level_side_effects.py': [[], ['import_time_work']],
    'test_payloads_side_effect.py': [['test_payloads_invalid'], ['metaprogramming', 'risky_call']],
    // Evasions the checker cannot see through (computed names, C entry points without a rule): only
    // the syscall layer stops them (test/sandbox-syscalls.test.ts).
    'evade_socket.py': [[], ['risky_call']],
    'evade_socket_thread.py': [[], ['risky_call', 'risky_import']],
    'evade_spawn_interpreter.py': [[], ['risky_call']],
    'evade_exec.py': [[], ['risky_call']],
    'evade_fork_thread.py': [[], ['risky_call', 'risky_import']],
    'evade_ptrace.py': [[], ['risky_call']],
    'evade_process_vm.py': [[], ['risky_call']],
    'evade_pidfd.py': [[], []],
    'evade_kill_pid1.py': [[], ['risky_call']],
    'evade_setown.py': [[], []],
    'evade_sigmask.py': [[], ['risky_call']],
    'evade_agent_fds.py': [[], ['risky_call']],
    'unsafe_numbers.py': [[], ['metaprogramming']],
    'probe_environment.py': [[], ['risky_call']],
    'idle_spinner.py': [[], ['risky_import']],
  };

  it('covers every fixture file', () => {
    const files = fs
      .readdirSync(FIXTURES)
      .filter((f) => f.endsWith('.py'))
      .sort();
    expect(files).toEqual(Object.keys(expected).sort());
  });

  it('every fixture starts with a one-line comment saying what it attacks', () => {
    for (const name of Object.keys(expected)) {
      expect(fixture(name).toString('utf8').split('\n')[0]).toMatch(/^# \S.{10,}/);
    }
  });

  it.each(Object.entries(expected))('%s', (name, [errors, warnings]) => {
    const r = checkFixture(name);
    expect(bySeverity(r, 'error')).toEqual(errors);
    expect(bySeverity(r, 'warning')).toEqual(warnings);
  });
});

describe('corpus: ordinary task files in many styles pass the check', () => {
  it.each(corpusFiles())('%s', (file) => {
    const r = check(fs.readFileSync(path.join(CORPUS, file)), { fileName: file });
    expect(r.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(r.findings.map((f) => f.code).sort()).toEqual(CORPUS_WARNINGS[file] ?? []);
  });
});

describe('contract fixtures', () => {
  it('good files pass with no findings; literal TEST_PAYLOADS come back', () => {
    expect(checkFixture('good_async.py')).toEqual({ findings: [], test_payloads: null, external_imports: [] });
    expect(checkFixture('good_sync.py')).toEqual({ findings: [], test_payloads: null, external_imports: [] });
    const r = checkFixture('good_with_test_payloads.py');
    expect(r.findings).toEqual([]);
    expect(r.test_payloads).toEqual([
      { name: 'ada', numbers: [1, 2, 3] },
      { name: 'grace', numbers: [] },
      { name: 'linus', numbers: [-1.5, 2.5], tags: { admin: false, nested: [null, true] } },
    ]);
  });

  it('reports the missing, non-function and wrong-arity handlers with lines', () => {
    expect(find(checkFixture('no_handler.py'), 'handler_missing')).toHaveLength(1);
    const notFn = find(checkFixture('handler_not_callable.py'), 'handler_not_function');
    expect(notFn).toMatchObject([{ severity: 'error', line: 2 }]);
    expect(notFn[0].message).toMatch(/^handler is bound to the constant 42/);
    const two = find(checkFixture('wrong_arity.py'), 'handler_arity');
    expect(two).toMatchObject([{ severity: 'error', line: 4 }]);
    expect(two[0].message).toContain('2 required positional parameters (payload, context)');
    expect(find(checkFixture('zero_arity.py'), 'handler_arity')[0].message).toContain('0 required');
  });

  it('reports a syntax error with line and column', () => {
    const r = checkFixture('syntax_error.py');
    expect(r.findings).toHaveLength(1);
    expect(r.findings[0]).toMatchObject({ code: 'syntax_error', severity: 'error', line: 4, col: 21 });
    expect(r.test_payloads).toBeNull();
  });
});

describe('handler contract', () => {
  it.each([
    ['async def handler(payload):\n    return payload\n', []],
    ['def handler(payload, retries=3, *, verbose=False, **extra):\n    return payload\n', []],
    ['def handler(payload, /):\n    return payload\n', []],
    ['def handler(*args):\n    return args\n', ['handler_arity']],
    ['def handler(payload, *args):\n    return args\n', ['handler_arity']],
    ['def handler(payload, *, key):\n    return key\n', ['handler_arity']],
    ['def handler(a, b, c=1):\n    return a\n', ['handler_arity']],
    ['handler = lambda payload: payload\n', ['handler_not_function']],
    ['class handler:\n    pass\n', ['handler_not_function']],
    ['from json import loads as handler\n', ['handler_not_function']],
    ['def handler(payload):\n    yield payload\n', ['handler_not_function']],
    ['async def handler(payload):\n    yield payload\n', ['handler_not_function']],
    // The last top-level binding wins, as at run time.
    ['def handler(payload):\n    return 1\nhandler = 3\n', ['handler_not_function']],
    ['handler = 3\ndef handler(payload):\n    return 1\n', []],
    // A handler defined only under the main guard does not exist when the task is loaded.
    ['if __name__ == "__main__":\n    def handler(payload):\n        return 1\n', ['handler_missing']],
    ['def helper(payload):\n    def handler(p):\n        return p\n    return handler\n', ['handler_missing']],
  ])('%j', (source, errors) => {
    expect(bySeverity(check(source), 'error')).toEqual(errors);
  });
});

describe('errors: imports of the modules that exist to spawn processes, open sockets or load native code', () => {
  it('names the module, the reason and the line', () => {
    const r = checkFixture('subprocess_shell.py');
    expect(find(r, 'forbidden_import')).toMatchObject([
      {
        severity: 'error',
        line: 3,
        col: 1,
        message: "import of 'subprocess' is forbidden: it exists to spawn processes, which the sandbox refuses",
        snippet: 'import subprocess\n^',
      },
    ]);
    expect(find(checkFixture('ctypes_syscall.py'), 'forbidden_import')).toMatchObject([
      { line: 11, message: expect.stringContaining('load and call native code') },
    ]);
    expect(find(checkFixture('connect_localhost.py'), 'forbidden_import')).toMatchObject([
      { line: 2, message: expect.stringContaining('network sockets') },
    ]);
  });

  it.each([
    'import subprocess\n',
    'import subprocess as sp\n',
    'from subprocess import run\n',
    'import _posixsubprocess\n',
    'import multiprocessing.pool\n',
    'from multiprocessing import Process\n',
    'import _multiprocessing\n',
    'import concurrent.futures.process\n',
    'from concurrent.futures import ProcessPoolExecutor\n',
    'import asyncio.subprocess\n',
    'from asyncio import subprocess as sp\n',
    'import pty\n',
    'import socket\n',
    'from socket import socket\n',
    'import _socket\n',
    'import socketserver\n',
    'import ssl\n',
    'import ctypes\n',
    'import ctypes.util\n',
    'from ctypes import CDLL\n',
    'import _ctypes\n',
    'import cffi\n',
    'def f():\n    import subprocess\n', // a lazy import is still one
    // Python folds identifiers to NFKC: these are the modules above.
    'import ｓｕｂｐｒｏｃｅｓｓ\n',
    'from ｃｔｙｐｅｓ import CDLL\n',
    'import ｓｏｃｋｅｔ as s\n',
    // An import by a literal name is an import.
    'def f():\n    return __import__("subprocess")\n',
    'import importlib\ndef f():\n    return importlib.import_module("socket")\n',
    'from importlib import import_module\ndef f():\n    return import_module("ctypes.util")\n',
  ])('%j is an error (forbidden_import)', (body) => {
    const r = check(withHandler(body));
    expect(bySeverity(r, 'error')).toEqual(['forbidden_import']);
    expect(find(r, 'forbidden_import')[0]).toMatchObject({
      line: expect.any(Number),
      col: expect.any(Number),
      message: /is forbidden: it exists to/,
    });
  });

  it('follows aliases, from-imports, getattr with a literal name and the builtins module', () => {
    const r = checkFixture('forbidden_aliases.py');
    expect(find(r, 'forbidden_import').map((f) => [f.line, f.message.match(/import of '([^']+)'/)?.[1]])).toEqual([
      [5, 'subprocess'], // from subprocess import run
      [17, 'socket'], // __import__("socket")
    ]);
    // The rest is reached from lambdas, not the handler's own body: warnings.
    const refused = find(r, 'risky_call').map((f) => [f.line, f.message.match(/use of '([^']+)'/)?.[1]]);
    expect(refused).toEqual([
      [11, 'os.system'], // o.system
      [12, 'os.system'], // s = from os import system as s
      [14, 'os.popen'], // getattr(o, "popen")
    ]);
    const meta = find(r, 'metaprogramming').map((f) => [f.line, f.message.match(/(?:of '|naming \.)([\w.]+)/)?.[1]]);
    expect(meta).toEqual([
      [2, 'builtins'],
      [15, 'exec'], // b.exec with import builtins as b
      [16, 'eval'],
      [17, '__import__'], // the dict's key "__import__"
      [17, '__import__'],
    ]);
  });
});

describe("errors: a call the sandbox refuses, in the handler's own body (every call fails there); elsewhere a warning", () => {
  it.each([
    ['import os as o\ndef handler(p):\n    return o.popen(p)\n', 3, 'os.popen'],
    ['import os\ndef handler(p):\n    os.posix_spawnp("x", ["x"], {})\n', 3, 'os.posix_spawnp'],
    ['import os\ndef handler(p):\n    return list(map(os.system, ["id"]))\n', 3, 'os.system'], // referenced, not called
    ['import asyncio\nasync def handler(p):\n    await asyncio.create_subprocess_exec("id")\n', 3, 'asyncio.create_subprocess_exec'],
    [
      'import asyncio\nasync def handler(p):\n    await asyncio.subprocess.create_subprocess_shell("id")\n',
      3,
      'asyncio.subprocess.create_subprocess_shell',
    ],
    ['import os\nmod = os\ndef handler(p):\n    m = mod\n    m.system("id")\n', 5, 'os.system'],
    ['import os\ndef handler(p):\n    (m := os).system("id")\n', 3, 'os.system'],
    ['import os\ndef handler(p):\n    g = getattr\n    return g(os, "popen")\n', 4, 'os.popen'],
    ['from os import execv as go\ndef handler(p):\n    go("/bin/sh", ["sh"])\n', 3, 'os.execv'],
    ['import posix\ndef handler(p):\n    posix.system("id")\n', 3, 'posix.system'],
    ['def handler(p):\n    __import__("os").kill(1, 9)\n', 2, 'os.kill'],
    ['import os\ndef handler(p):\n    if p:\n        os.fork()\n', 4, 'os.fork'],
  ])('%j', (source, line, name) => {
    const inHandler = check(source);
    expect(bySeverity(inHandler, 'error')).toEqual(['forbidden_call']);
    expect(find(inHandler, 'forbidden_call', line)[0].message).toContain(`'${name}' in the handler's own body`);
    // The same code in a function nobody may call: it fails only if it runs.
    const elsewhere = check(withHandler(source.replace('def handler(p)', 'def helper(p)')));
    expect(bySeverity(elsewhere, 'error')).toEqual([]);
    expect(find(elsewhere, 'risky_call', line + 2)[0]).toMatchObject({
      severity: 'warning',
      col: expect.any(Number),
      message: expect.stringContaining('refuses at run time if this code runs'),
    });
  });

  it('importing such a name is a warning, not an error', () => {
    for (const body of ['from os import system\n', 'from os import *\n', 'import posix\nfrom posix import fork\n']) {
      const r = check(withHandler(body));
      expect(bySeverity(r, 'error')).toEqual([]);
      expect(find(r, 'risky_import').length).toBeGreaterThan(0);
    }
  });
});

describe('warnings: introspection and code built at run time, each with its place and a note that run-time enforcement applies', () => {
  it.each([
    ['def f(cls):\n    return cls.__mro__\n', 2],
    ['def f(m):\n    return m.__self__\n', 2],
    ['def f(c):\n    return c.__bases__\n', 2],
    ['def f():\n    return object.__subclasses__()\n', 2],
    ['def f(g):\n    return g.__code__\n', 2],
    ['def f():\n    return print.__self__\n', 2],
    ['def f():\n    return __loader__\n', 2],
    ['def f(o):\n    return getattr(o, "__globals__")\n', 2],
    ['def f(fn):\n    match fn:\n        case object(__globals__=g):\n            return g\n', 3],
    ['import sys\ndef f():\n    return sys._getframe(1)\n', 3],
    ['def f():\n    try:\n        raise ValueError\n    except ValueError as e:\n        return e.__traceback__.tb_frame.f_back\n', 5],
    ['import types\ndef f(c):\n    return types.FunctionType(c, {})\n', 3],
    ['import types\nKINDS = (types.CodeType, types.FunctionType)\n', 2],
    ['from types import FunctionType\n', 1],
    ['def f(src):\n    exec(src, {})\n', 2],
    ['def f(src):\n    return eval(src)\n', 2],
    ['def f(src):\n    return compile(src, "x", "exec")\n', 2],
    ['import sys\ndef f():\n    return sys.modules["__main__"]\n', 3],
    ['import sys\ndef f():\n    return sys.modules.get(__name__)\n', 3],
    ['import importlib.util\n', 1],
    ['from importlib.metadata import version\n', 1],
    ['import importlib\ndef f(n):\n    return importlib.import_module(n)\n', 1],
    ['def f(n):\n    return __import__(n)\n', 2],
    ['import gc\n', 1],
    ['import posix\n', 1],
    ['import pickle\n', 1],
    ['import marshal\n', 1],
    ['import inspect\n', 1],
    ['import builtins\ndef f():\n    return getattr(builtins, "eval")\n', 3],
  ])('%j', (body, lineInBody) => {
    const r = check(withHandler(body));
    expect(bySeverity(r, 'error')).toEqual([]);
    const got = find(r, 'metaprogramming', lineInBody + 2);
    expect(got.length).toBeGreaterThan(0);
    expect(got[0]).toMatchObject({ severity: 'warning', col: expect.any(Number), snippet: expect.stringContaining('^') });
    expect(got[0].message).toContain('run-time enforcement applies');
  });
});

describe('other warnings, and ordinary code that has none', () => {
  it('knows re.compile from the compile builtin', () => {
    expect(check(withHandler('from re import compile\ndef f():\n    return compile("a+")\n')).findings).toEqual([]);
    expect(check(withHandler('import re\ndef f():\n    return re.compile("a+")\n')).findings).toEqual([]);
    expect(check(withHandler('def f():\n    from re import compile\n    return compile("a+")\n')).findings).toEqual([]);
  });

  it.each([
    ['import threading\n', 'risky_import'],
    ['import signal\n', 'risky_import'],
    ['import urllib.request\n', 'risky_import'],
    ['from http import client\n', 'risky_import'],
    ['import requests\n', 'risky_import'],
    ['def f():\n    return open("/etc/passwd").read()\n', 'risky_call'],
    ['def f():\n    return open("/tmp/../etc/passwd").read()\n', 'risky_call'],
    ['def f():\n    return globals()\n', 'risky_call'],
    ['def f():\n    return vars()\n', 'risky_call'],
    ['def f(o, n):\n    return getattr(o, n)\n', 'risky_call'],
    ['import os\ndef f():\n    os._exit(0)\n', 'risky_call'],
    ['def f():\n    breakpoint()\n', 'risky_call'],
  ])('%j is a warning (%s)', (source, code) => {
    const r = check(withHandler(source));
    expect(bySeverity(r, 'error')).toEqual([]);
    expect(bySeverity(r, 'warning').filter((c) => c !== 'unused_import')).toEqual([code]);
  });

  it('allows ordinary stdlib use without findings', () => {
    const source = [
      'import asyncio, json, os, re, shutil, tempfile, urllib.parse',
      'from http import HTTPStatus',
      'async def handler(payload):',
      '    await asyncio.sleep(0)',
      '    with open("/tmp/work.json", "w") as f:',
      '        json.dump(payload, f)',
      '    d = tempfile.mkdtemp()',
      '    shutil.rmtree(d)',
      '    return {"cwd": os.getcwd(), "q": urllib.parse.quote("a b"), "s": HTTPStatus.OK.value,',
      '            "m": bool(re.match("a", "a")), "home": os.environ.get("HOME"), "n": vars(payload) if False else 0}',
    ].join('\n');
    expect(check(source).findings).toEqual([]);
  });
});

describe('lint findings (pyflakes)', () => {
  it('an undefined name in the handler body is an error, read like a compiler message', () => {
    const r = check('def handler(payload):\n    name = payload.get("name")\n    return {"greeting": f"hi {name}", "echo": pyload}\n', {
      fileName: 'greet.py',
    });
    expect(r.findings).toEqual([
      {
        code: 'undefined_name',
        severity: 'error',
        message: "'pyload' is not defined",
        line: 3,
        col: 47,
        snippet: '    return {"greeting": f"hi {name}", "echo": pyload}\n                                              ^',
      },
    ]);
  });

  it.each([
    ['in a helper', 'def helper():\n    return missing\n'],
    ['in a function nested in the handler', 'def handler(payload):\n    def later():\n        return missing\n    return later\n'],
    ['in a lambda in the handler', 'def handler(payload):\n    return lambda: missing\n'],
    ['at module level', 'X = missing\n'],
  ])('an undefined name %s is a warning (it fails only if that code runs)', (_label, body) => {
    const source = body.includes('def handler') ? body : withHandler(body);
    const r = check(source);
    expect(r.findings).toEqual([
      expect.objectContaining({ code: 'undefined_name', severity: 'warning', message: "'missing' is not defined" }),
    ]);
  });

  it.each([
    ['import os\nimport json as j\n', 'unused_import', "'os' imported but unused"],
    ['def f():\n    x = 1\n    return 2\n', 'unused_variable', "local variable 'x' is assigned to but never used"],
    ['def f():\n    return 1\ndef f():\n    return 2\n', 'redefined_unused', "redefinition of unused 'f' from line 3"],
    ['def f(x):\n    return x is "a"\n', 'lint', 'use ==/!= to compare constant literals'],
    ['X = f"plain"\n', 'lint', 'f-string is missing placeholders'],
    ['def f():\n    return missing_name_in_f\n', 'undefined_name', "'missing_name_in_f' is not defined"],
    [
      'x = 0\ndef f():\n    print(x)\n    x = 1\n',
      'undefined_name',
      "local variable 'x' defined in enclosing scope on line 3 referenced before assignment",
    ],
  ])('%j -> %s warning', (body, code, message) => {
    const r = check(withHandler(body));
    const got = find(r, code);
    expect(got.length).toBeGreaterThan(0);
    expect(got[0]).toMatchObject({
      severity: 'warning',
      line: expect.any(Number),
      col: expect.any(Number),
      snippet: expect.stringContaining('^'),
    });
    expect(got[0].message).toContain(message);
    expect(bySeverity(r, 'error')).toEqual([]);
  });

  it('says so when pyflakes is missing instead of passing silently', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'checker-'));
    const copy = path.join(dir, 'checker.py');
    fs.writeFileSync(copy, fs.readFileSync(CHECKER, 'utf8').replace('"/usr/lib/python3/dist-packages"', '"/nonexistent"'));
    fs.copyFileSync(path.join(__dirname, '..', 'domain', 'finding-codes.json'), path.join(dir, 'finding-codes.json'));
    const res = spawnSync(PYTHON, ['-I', '-S', copy], {
      input: JSON.stringify({ source_b64: Buffer.from(withHandler('import os')).toString('base64'), file_name: 't.py', max_bytes: 1000 }),
    });
    expect(JSON.parse(res.stdout.toString()).findings).toEqual([
      expect.objectContaining({ code: 'lint_unavailable', severity: 'warning' }),
    ]);
  });

  it('without packaging a file with a PEP 723 block fails the check (closed); one without is checked as ever', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'checker-'));
    const copy = path.join(dir, 'checker.py');
    fs.writeFileSync(copy, fs.readFileSync(CHECKER, 'utf8').replace('"/usr/lib/python3/dist-packages"', '"/nonexistent"'));
    fs.copyFileSync(path.join(__dirname, '..', 'domain', 'finding-codes.json'), path.join(dir, 'finding-codes.json'));
    const run = (source: string) =>
      spawnSync(PYTHON, ['-I', '-S', copy], {
        input: JSON.stringify({ source_b64: Buffer.from(source).toString('base64'), file_name: 't.py', max_bytes: 1000 }),
      });
    const withBlock = run(withHandler('# /// script\n# dependencies = ["six"]\n# ///'));
    expect(withBlock.status).not.toBe(0);
    expect(withBlock.stdout.toString()).toBe('');
    expect(withBlock.stderr.toString()).toMatch(/No module named 'packaging'/);
    expect(run(withHandler('x = 1')).status).toBe(0);
  });
});

describe('what Python only finds when compiling', () => {
  it.each([
    ['return 1\n', 1, "'return' outside function"],
    ['def f(a, a):\n    pass\n', 1, "duplicate argument 'a' in function definition"],
    ['await x\n', 1, "'await' outside function"],
    ['for x in []:\n    pass\nelse:\n    break\n', 4, "'break' outside loop"],
    ['def f():\n    nonlocal y\n', 2, "no binding for nonlocal 'y' found"],
    ['X = 1\nfrom __future__ import annotations\n', 2, 'from __future__ imports must occur at the beginning of the file'],
  ])('%j is a syntax error, as Python reports it', (body, lineInBody, message) => {
    const r = check(withHandler(body));
    expect(r.findings).toEqual([expect.objectContaining({ code: 'syntax_error', severity: 'error', line: lineInBody + 2, message })]);
  });
});

describe('snippets', () => {
  it('keeps tabs in the caret line and counts characters, not bytes', () => {
    const r = check('def handler(payload):\n\treturn {"é": "ü", "x": pyload}\n');
    expect(find(r, 'undefined_name')[0]).toMatchObject({
      col: 25,
      snippet: '\treturn {"é": "ü", "x": pyload}\n\t                       ^',
    });
  });

  it('cuts a long line to a window around the column', () => {
    const r = check(`def handler(payload):\n    return ["${'a'.repeat(300)}", pyload]\n`);
    const f = find(r, 'undefined_name')[0];
    const [text, caret] = f.snippet!.split('\n');
    expect(text.length).toBeLessThanOrEqual(126);
    expect(text.startsWith('...')).toBe(true);
    expect(text.slice(caret.length - 1, caret.length - 1 + 'pyload'.length)).toBe('pyload');
  });

  it('findings without a line have no snippet', () => {
    expect(check('X = 1\n').findings).toEqual([{ code: 'handler_missing', severity: 'error', message: expect.any(String) }]);
  });
});

describe('names that shadow builtins', () => {
  it.each([
    'def f(exec=None, compile=False):\n    return exec, compile\n',
    'def f(payload):\n    compile = payload.get("compile")\n    return compile\n',
    'def f(steps):\n    for eval in steps:\n        eval()\n',
    'def f():\n    def breakpoint():\n        return 1\n    return breakpoint()\n',
    'def f(p):\n    open = p.open\n    return open("/etc/x")\n',
  ])('a parameter or local binding is not the builtin: %j', (body) => {
    expect(check(withHandler(body)).findings).toEqual([]);
  });

  it.each([
    ['def f(s):\n    [0 for compile in []]\n    return compile(s, "", "exec")\n', 3], // a comprehension's own scope
    ['def f(s):\n    exec = eval\n    return exec(s)\n', 3],
    ['compile = 1\ndef f(s):\n    return eval(s)\n', 3],
    ['def f(s):\n    x = lambda eval: eval\n    return eval(s)\n', 3],
    // A default is evaluated in the enclosing scope, so a later local import cannot hide it.
    ['def f(run=eval):\n    from re import eval\n    return run\n', 1],
    // `global` + `del` can unshadow a builtin again, so an import no longer hides it.
    ['from re import compile\ndef f():\n    global compile\n    del compile\n    return compile("1", "", "eval")\n', 5],
  ])('the builtin is still seen where it is reachable: %j', (body, lineInBody) => {
    const r = check(withHandler(body));
    expect(find(r, 'metaprogramming', lineInBody + 2)).toHaveLength(1);
  });
});

describe('dunder escapes are warnings: the run is what stops them (test/sandbox-hostile.test.ts)', () => {
  it('flags escape attributes, __builtins__, frames and format-string access', () => {
    const r = checkFixture('dunder_escape.py');
    expect(bySeverity(r, 'error')).toEqual([]);
    const got = find(r, 'metaprogramming').map((f) => [f.line, f.message.match(/(__\w+__|\b[a-z]+_[a-z]+\b)/)?.[1]]);
    expect(got).toEqual([
      [5, '__subclasses__'],
      [5, '__base__'],
      [7, '__globals__'],
      [11, '__builtins__'],
      [17, 'f_back'],
      [17, 'tb_frame'],
      [18, 'f_globals'],
      [19, '__globals__'], // "{0.__globals__}".format(handler)
    ]);
  });

  it('a docstring may name an escape gadget: prose is not a use', () => {
    const source = withHandler('def f(cls):\n    """Walks cls.__mro__ and __subclasses__() like the docs say."""\n    return cls\n');
    expect(check(source).findings).toEqual([]);
    expect(bySeverity(check(withHandler('X = "__subclasses__"\n')), 'warning')).toEqual(['metaprogramming']);
  });
});

describe('module-level code', () => {
  it('accepts what runs at import time; only a loop gets a warning', () => {
    const r = checkFixture('top_level_side_effects.py');
    expect(r.findings).toEqual([
      expect.objectContaining({
        code: 'import_time_work',
        severity: 'warning',
        line: 11,
        col: 1,
        message: expect.stringContaining('a for loop'),
      }),
    ]);
    expect(r.findings[0].message).toContain('load timeout');
  });

  it.each([
    'print("hi")\n',
    'X = [i for i in range(10)]\n',
    'SQUARES = {n: n * n for n in range(100)}\nBITS = frozenset(1 << i for i in range(8))\n',
    'X = "x" * 10 ** 9\n', // allocates at load: the sandbox's memory limit is what stops it
    'X = 2 ** 64\n',
    'import functools\n@functools.lru_cache(maxsize=len("ab"))\ndef f():\n    pass\n',
    'class A(type("B", (), {})):\n    pass\n',
    'def f(x: print(1)):\n    pass\n',
    'X: print(1) = 1\n',
    'X = 1\nX += 1\n',
    'import logging\nlogger = logging.getLogger(__name__)\nlogging.basicConfig(level=logging.INFO)\n',
    'import re\nWORD = re.compile(r"\\w+")\nSTOP = frozenset({"a", "the"})\n',
    'from dataclasses import dataclass, field\n@dataclass(frozen=True)\nclass P:\n    name: str\n    tags: list = field(default_factory=list)\n',
    'from enum import Enum, auto\nclass Color(Enum):\n    RED = auto()\n    GREEN = auto()\n',
    'from typing import NamedTuple, TypedDict\nclass Pt(NamedTuple):\n    x: int\n    y: int = 0\nclass Movie(TypedDict, total=False):\n    title: str\nUser = TypedDict("User", {"name": str})\n',
    'import functools\nclass C:\n    @staticmethod\n    def s():\n        return 1\n    @functools.cached_property\n    def p(self):\n        return 2\n',
    'try:\n    import zoneinfo\nexcept ImportError:\n    zoneinfo = None\n',
    '"""docstring"""\n',
    'from typing import Any, Optional\nJson = dict[str, Any] | None\nT = Optional[int]\n',
    'if __name__ == "__main__":\n    print(handler({}))\n',
    'pass\n...\n',
  ])('accepts %j without findings', (body) => {
    expect(check(withHandler(body)).findings).toEqual([]);
  });

  it.each([
    ['while True:\n    pass\n', 1, 'a while loop'],
    ['for i in range(3):\n    pass\n', 1, 'a for loop'],
    ['class A:\n    for i in range(3):\n        pass\n', 2, 'a for loop'],
    ['try:\n    pass\nexcept Exception:\n    while False:\n        pass\n', 4, 'a while loop'],
    ['if __name__ == "__main__":\n    pass\nelse:\n    for i in range(3):\n        pass\n', 4, 'a for loop'],
  ])('warns about a loop at load time: %j', (body, lineInBody, what) => {
    const r = check(withHandler(body));
    expect(r.findings).toEqual([expect.objectContaining({ code: 'import_time_work', severity: 'warning', line: lineInBody + 2 })]);
    expect(r.findings[0].message).toContain(what);
  });

  it('a loop inside a function or under the main guard does not run at load', () => {
    expect(
      check(withHandler('def f():\n    for i in range(3):\n        pass\nif __name__ == "__main__":\n    while True:\n        pass\n'))
        .findings,
    ).toEqual([]);
  });

  it('does not exempt the main guard when the module itself would be __main__', () => {
    const source = withHandler('if __name__ == "__main__":\n    while True:\n        pass\n');
    expect(find(check(source, { fileName: '__main__.py' }), 'import_time_work', 4)).toHaveLength(1);
  });
});

describe('TEST_PAYLOADS', () => {
  const MARKER = '/tmp/taskflow-checker-executed-test-payloads';

  it('never evaluates TEST_PAYLOADS: a non-literal is a finding and its side effect does not happen', () => {
    fs.rmSync(MARKER, { force: true });
    const r = checkFixture('test_payloads_side_effect.py');
    expect(fs.existsSync(MARKER)).toBe(false);
    expect(r.test_payloads).toBeNull();
    const bad = find(r, 'test_payloads_invalid');
    expect(bad).toHaveLength(1);
    expect(bad[0].message).toContain('plain literal');
  });

  it('does not run a top-level infinite loop or exit either (the checker returns promptly)', () => {
    const started = Date.now();
    expect(bySeverity(checkFixture('import_loop.py'), 'warning')).toEqual(['import_time_work']);
    expect(checkFixture('exit_at_import.py').findings).toEqual([]);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it.each([
    ['TEST_PAYLOADS = [f()]', /found a call/],
    ['TEST_PAYLOADS = [{"a": X}]', /found a name/],
    ['TEST_PAYLOADS = {"a": 1}', /list of dicts, not a dict/],
    ['TEST_PAYLOADS = [1, 2]', /TEST_PAYLOADS\[0\] is a int/],
    ['TEST_PAYLOADS = [{"a": {1, 2}}]', /set is not JSON/],
    ['TEST_PAYLOADS = [{"a": (1, 2)}]', /tuple is not JSON/],
    ['TEST_PAYLOADS = [{"a": b"x"}]', /bytes is not JSON/],
    ['TEST_PAYLOADS = [{1: "a"}]', /key 1 is not a string/],
    ['TEST_PAYLOADS = [{"a": 1e999}]', /inf is not a JSON number/],
    ['TEST_PAYLOADS = [{"a": 9007199254740993}]', /range JSON numbers keep exactly/],
    [`TEST_PAYLOADS = [${Array(21).fill('{}').join(', ')}]`, /21 entries; at most 20/],
    ['TEST_PAYLOADS = [{}]\nTEST_PAYLOADS = [{}]', /assigned 2 times/],
    ['TEST_PAYLOADS, X = [{}], 1', /assigned on its own/],
  ])('%j is invalid', (body, message) => {
    const r = check(withHandler(body));
    const bad = find(r, 'test_payloads_invalid');
    expect(bad).toHaveLength(1);
    expect(bad[0].severity).toBe('error');
    expect(bad[0].message).toMatch(message);
    expect(r.test_payloads).toBeNull();
  });

  it('returns valid payloads, including an empty list and an annotated assignment', () => {
    expect(check(withHandler('TEST_PAYLOADS = []')).test_payloads).toEqual([]);
    const r = check(withHandler('TEST_PAYLOADS: list = [{"n": -1, "f": 0.5, "s": "é", "z": None}]'));
    expect(r.findings).toEqual([]);
    expect(r.test_payloads).toEqual([{ n: -1, f: 0.5, s: 'é', z: null }]);
  });
});

describe('bytes, size and parser limits', () => {
  it('rejects a file over max_bytes without parsing it', () => {
    const source = withHandler(`X = "${'a'.repeat(2000)}"\nprint("side effect")`);
    const r = check(source, { maxBytes: 1000 });
    expect(r.findings).toEqual([
      expect.objectContaining({ code: 'too_large', severity: 'error', message: expect.stringContaining('limit is 1000') }),
    ]);
  });

  it('rejects bytes that are not UTF-8, with the line', () => {
    const source = Buffer.concat([Buffer.from('def handler(payload):\n    return "'), Buffer.from([0xff, 0xfe]), Buffer.from('"\n')]);
    const r = check(source);
    expect(r.findings).toEqual([expect.objectContaining({ code: 'not_utf8', severity: 'error', line: 2 })]);
  });

  it('rejects NUL bytes, with the line', () => {
    const r = check('def handler(payload):\n    return 1\0\n');
    expect(r.findings).toEqual([expect.objectContaining({ code: 'null_bytes', severity: 'error', line: 2 })]);
  });

  it('rejects a coding declaration other than UTF-8', () => {
    const r = check('# -*- coding: utf-7 -*-\n' + withHandler(''));
    expect(r.findings).toEqual([expect.objectContaining({ code: 'encoding_declaration', line: 1 })]);
    expect(check('# -*- coding: utf-8 -*-\n' + withHandler('')).findings).toEqual([]);
  });

  it('reads a UTF-8 byte order mark as Python does: skipped, columns counted without it', () => {
    expect(check('\ufeff' + withHandler('')).findings).toEqual([]);
    const r = check('\ufeffimport os\n' + withHandler(''));
    expect(r.findings).toEqual([expect.objectContaining({ code: 'unused_import', line: 1, col: 1, snippet: 'import os\n^' })]);
    // Python refuses a BOM together with a coding declaration for another codec; so does the check.
    expect(bySeverity(check('\ufeff# coding: latin-1\n' + withHandler('')), 'error')).toEqual(['encoding_declaration']);
  });

  it('reads CRLF and lone CR line ends as Python does', () => {
    const crlf = check('import os\r\ndef handler(payload):\r\n    return pyload\r\n');
    expect(crlf.findings).toEqual([
      expect.objectContaining({ code: 'unused_import', line: 1, snippet: 'import os\n^' }),
      expect.objectContaining({ code: 'undefined_name', severity: 'error', line: 3, col: 12, snippet: '    return pyload\n           ^' }),
    ]);
    const cr = check('X = 1\rdef handler(payload):\r    return pyload\r');
    expect(cr.findings).toEqual([expect.objectContaining({ code: 'undefined_name', line: 3, col: 12 })]);
    expect(check('\ufeff' + withHandler('').replace(/\n/g, '\r\n')).findings).toEqual([]);
  });

  it.each([
    ['10,000 nested parentheses', `X = ${'('.repeat(10_000)}1${')'.repeat(10_000)}`, 'syntax_error'],
    ['100,000 unary minuses', `X = ${'-'.repeat(100_000)}1`, 'too_complex'],
    ['a 100,000-term chain', `X = 1${' + 1'.repeat(100_000)}`, 'too_complex'],
    ['a 60,000-deep attribute chain', `X = a${'.b'.repeat(60_000)}`, 'too_complex'],
  ])('%s is a finding, not a crash', (_label, body, code) => {
    const r = check(withHandler(body), { maxBytes: 1024 * 1024 });
    expect(r.findings).toEqual([expect.objectContaining({ code, severity: 'error' })]);
  });

  it('handles a deep but parseable tree without recursing itself', () => {
    const r = check(withHandler(`a = 1\nX = a${' | a'.repeat(1500)}\nY = 1${' + 1'.repeat(1500)}`));
    // pyflakes recurses, so it bows out (visibly) where the checker's own walk does not.
    expect(r.findings).toEqual([expect.objectContaining({ code: 'lint_unavailable', severity: 'warning' })]);
    expect(check(withHandler(`a = 1\nX = a${' | a'.repeat(150)}`)).findings).toEqual([]);
  });

  it("bounds its alias analysis: names assigned from each other's attributes give up with a warning, quickly", () => {
    // A dozen names, each assigned three times from another's attribute, in a function nobody calls
    // (~500 bytes): every pass multiplied what each name may mean, past a GB before the bound.
    const names = 'abcdefghijkl';
    const lines = ['import os', 'def never():', '    a = os'];
    for (let i = 0; i < names.length; i++) {
      for (let j = 0; j < 3; j++) lines.push(`    ${names[i]} = ${names[(i * 5 + j * 7 + 1) % 12]}.${'xyz'[j]}`);
    }
    const started = Date.now();
    // Run under a 512 MiB address-space cap, so an unbounded analysis fails here rather than squeezing the host.
    const res = spawnSync('/usr/bin/prlimit', [`--as=${512 * 1024 * 1024}`, PYTHON, '-I', '-S', CHECKER], {
      input: JSON.stringify({
        source_b64: Buffer.from(withHandler(lines.join('\n'))).toString('base64'),
        file_name: 't.py',
        max_bytes: MAX_BYTES,
      }),
      timeout: 30_000,
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(res.status).toBe(0);
    const r = JSON.parse(res.stdout.toString('utf8')) as Report;
    expect(bySeverity(r, 'error')).toEqual([]);
    expect(find(r, 'analysis_limited')).toEqual([
      expect.objectContaining({ severity: 'warning', message: expect.stringContaining('run-time enforcement applies') }),
    ]);
    // Within the bound, aliases are still followed.
    expect(find(check('import os\na = os\nb = a\nc = b\ndef handler(p):\n    c.system("id")\n'), 'forbidden_call', 6)).toHaveLength(1);
  });

  it('caps the number of findings, keeping errors', () => {
    const lines = ['import os', 'def handler(payload):'];
    for (let i = 0; i < 300; i++) lines.push('    os.system(payload)');
    const r = check(lines.join('\n'));
    expect(r.findings).toHaveLength(101);
    expect(r.findings[100]).toMatchObject({ code: 'too_many_findings', severity: 'warning' });
  });
});

describe('policy', () => {
  const source = withHandler('import threading\nimport subprocess\nfor _ in range(2):\n    threading.Lock()\nsubprocess.run\n');

  it('overrides a code to warning or off; untouched codes keep their default', () => {
    const base = check(source);
    expect(bySeverity(base, 'error')).toEqual(['forbidden_import']);
    expect(bySeverity(base, 'warning')).toEqual(['import_time_work', 'risky_import']);

    const lowered = check(source, { policy: { forbidden_import: 'warning', import_time_work: 'off' } });
    expect(bySeverity(lowered, 'error')).toEqual([]);
    expect(bySeverity(lowered, 'warning')).toEqual(['forbidden_import', 'risky_import']);
    expect(find(lowered, 'import_time_work')).toEqual([]);

    const raised = check(source, { policy: { risky_import: 'error' } });
    expect(find(raised, 'risky_import')[0].severity).toBe('error');
  });

  it('an explicit policy wins over a severity the checker chose for one finding', () => {
    const handlerTypo = 'def handler(payload):\n    return pyload\n';
    expect(find(check(handlerTypo), 'undefined_name')[0].severity).toBe('error');
    expect(find(check(handlerTypo, { policy: { undefined_name: 'warning' } }), 'undefined_name')[0].severity).toBe('warning');
    expect(find(check(handlerTypo, { policy: { undefined_name: 'off' } }), 'undefined_name')).toEqual([]);
  });

  it('too_large as a warning lets the rest of the check run', () => {
    const r = check(source, { maxBytes: 10, policy: { too_large: 'warning' } });
    expect(bySeverity(r, 'warning')).toEqual(['import_time_work', 'risky_import', 'too_large']);
    expect(bySeverity(r, 'error')).toEqual(['forbidden_import']);
  });
});

describe('request handling', () => {
  const good = { source_b64: Buffer.from(withHandler('')).toString('base64'), file_name: 't.py', max_bytes: 1000 };

  it.each([
    ['not JSON', 'nope'],
    ['a missing max_bytes', { source_b64: good.source_b64, file_name: 't.py' }],
    ['bad base64', { ...good, source_b64: '!!!' }],
    ['an unknown key', { ...good, maxBytes: 5 }],
    ['an unknown policy code', { ...good, policy: { no_such_code: 'off' } }],
    ['a bad severity', { ...good, policy: { forbidden_import: 'ignore' } }],
    ['lowering syntax_error (nothing can be checked after it)', { ...good, policy: { syntax_error: 'warning' } }],
  ])('fails with exit 2 on %s', (_label, request) => {
    const res = runRaw(request);
    expect(res.status).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr).toMatch(/bad request/);
  });
});
