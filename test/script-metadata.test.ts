/**
 * PEP 723 inline script metadata and the imports the standard library does not provide, as the
 * static checker reports them from inside the real checker container (Docker + runsc): the block is
 * read by the PEP's rules, its TOML by tomllib, its requirements by Debian's packaging, and
 * requires-python is judged against the sandbox's own interpreter. Nothing here is a finding about
 * external imports: the host judges those against the dependency layer.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type { CheckOutcome, Finding, Sandbox } from '../sandbox';
import { startSandbox, testConfig } from './helpers/sandbox';

let sandbox: Sandbox;

beforeAll(async () => {
  sandbox = await startSandbox(testConfig());
}, 120000);

afterAll(async () => {
  await sandbox?.close();
});

const HANDLER = 'def handler(payload):\n    return payload\n';
const check = (source: string, fileName = 'task.py'): Promise<CheckOutcome> => sandbox.check({ source, fileName });
const only = (o: CheckOutcome, code: string): Finding[] => o.findings.filter((f) => f.code === code);

describe('a well-formed block', () => {
  test('gives the dependencies (as packaging writes them), requires-python and the line of the block', async () => {
    const o = await check(
      [
        '"""A handler with dependencies."""',
        '# /// script',
        '# requires-python = ">=3.10"',
        '# dependencies = [',
        '#   "requests<3,>=2.31",',
        '#   \'pydantic[email] >= 2 ; python_version >= "3.8"\',',
        '# ]',
        '#',
        '# [tool.uv]',
        '# exclude-newer = "2026-01-01T00:00:00Z"',
        '# ///',
        'import requests',
        'import pydantic',
        HANDLER,
      ].join('\n'),
    );
    expect(o.ok).toBe(true);
    expect(o.findings.filter((f) => f.code.startsWith('script') || f.code.startsWith('requires'))).toEqual([]);
    expect(o.script).toEqual({
      dependencies: ['requests<3,>=2.31', 'pydantic[email]>=2; python_version >= "3.8"'],
      requiresPython: '>=3.10',
      line: 2,
    });
  });

  test('CRLF line ends are read as Python reads a file; an empty block declares nothing', async () => {
    const crlf = await check(['# /// script', '# dependencies = ["six==1.16.0"]', '# ///', HANDLER].join('\r\n'));
    expect(crlf.script).toEqual({ dependencies: ['six==1.16.0'], line: 1 });
    const empty = await check(['# /// script', '#', '# ///', HANDLER].join('\n'));
    expect(empty.ok).toBe(true);
    expect(empty.script).toEqual({ dependencies: [], line: 1 });
  });

  test('no block: no script, exactly as before; other block types are not read', async () => {
    const none = await check(HANDLER);
    expect(none.ok).toBe(true);
    expect(none.script).toBeUndefined();
    expect(none.findings).toEqual([]);
    const other = await check(['# /// pyproject', '# this = is not [ TOML', '# ///', HANDLER].join('\n'));
    expect(other.ok).toBe(true);
    expect(other.script).toBeUndefined();
  });

  test('an unclosed block is ignored, as the PEP says, with a warning saying so', async () => {
    const o = await check(['# /// script', '# dependencies = ["six"]', HANDLER].join('\n'));
    expect(o.ok).toBe(true);
    expect(o.script).toBeUndefined();
    expect(only(o, 'script_metadata_invalid')).toEqual([expect.objectContaining({ severity: 'warning', line: 1 })]);
  });
});

describe('a malformed block is an error with line and column', () => {
  test("malformed TOML: tomllib's own position, mapped to the file's line and column", async () => {
    const o = await check(['x = 1', '# /// script', '# dependencies = [', '#   "six",,', '# ]', '# ///', HANDLER].join('\n'));
    expect(o.ok).toBe(false);
    expect(o.script).toBeUndefined();
    const [f] = only(o, 'script_metadata_invalid');
    expect(f).toMatchObject({ severity: 'error', line: 4, col: 11 });
    expect(f.message).toMatch(/not valid TOML: Invalid value/);
    expect(f.snippet).toBe('#   "six",,\n          ^');
  });

  test("TOML that ends too soon points at the block's last line", async () => {
    const o = await check(['# /// script', '# dependencies = ["six"', '# ///', HANDLER].join('\n'));
    expect(only(o, 'script_metadata_invalid')).toEqual([expect.objectContaining({ severity: 'error', line: 2 })]);
    expect(only(o, 'script_metadata_invalid')[0].message).toMatch(/Unclosed array/);
  });

  test('a requirement that is not PEP 508, and one naming a URL, each at its own place', async () => {
    const o = await check(
      [
        '# /// script',
        '# dependencies = [',
        '#   "six",',
        '#   "requests>=>2",',
        '#   "evil @ https://example.invalid/evil.whl",',
        '# ]',
        '# ///',
        HANDLER,
      ].join('\n'),
    );
    expect(o.ok).toBe(false);
    expect(o.script).toBeUndefined();
    const found = only(o, 'script_metadata_invalid');
    expect(found).toHaveLength(2);
    expect(found[0]).toMatchObject({ severity: 'error', line: 4, col: 5 });
    expect(found[0].message).toMatch(/'requests>=>2' is not a PEP 508 requirement/);
    expect(found[1]).toMatchObject({ severity: 'error', line: 5, col: 5 });
    expect(found[1].message).toMatch(/names a URL/);
  });

  test('fields of the wrong type; an unknown field is only a warning', async () => {
    const o = await check(
      ['# /// script', '# dependencies = "six"', '# requires-python = 3.11', '# tool = 1', '# python = "3.11"', '# ///', HANDLER].join(
        '\n',
      ),
    );
    expect(o.ok).toBe(false);
    expect(only(o, 'script_metadata_invalid')).toEqual([
      expect.objectContaining({
        severity: 'error',
        line: 2,
        col: 3,
        message: expect.stringMatching(/^'dependencies' must be a list of strings/),
      }),
      expect.objectContaining({
        severity: 'error',
        line: 3,
        col: 3,
        message: expect.stringMatching(/^'requires-python' must be a string/),
      }),
      expect.objectContaining({ severity: 'error', line: 4, col: 3, message: "'tool' must be a table" }),
      expect.objectContaining({ severity: 'warning', line: 5, col: 3, message: expect.stringMatching(/^'python' is not a PEP 723 field/) }),
    ]);
  });

  test('what one block may cost is bounded: at most 1000 dependencies, and the first 20 bad ones placed', async () => {
    const block = (deps: string[]) =>
      ['# /// script', '# dependencies = [', ...deps.map((d) => `#   "${d}",`), '# ]', '# ///', HANDLER].join('\n');
    const many = await check(block(Array.from({ length: 1001 }, (_, i) => `pkg${i}>=1`)));
    expect(many.ok).toBe(false);
    expect(only(many, 'script_metadata_invalid')).toEqual([
      expect.objectContaining({ line: 2, col: 3, message: '1001 dependencies; at most 1000 are read' }),
    ]);
    const fine = await check(block(Array.from({ length: 1000 }, (_, i) => `pkg${i}>=1`)));
    expect(fine.ok).toBe(true);
    expect(fine.script?.dependencies).toHaveLength(1000);
    const bad = await check(block(Array.from({ length: 500 }, (_, i) => `bad>=>${i}`)));
    const found = only(bad, 'script_metadata_invalid');
    expect(found).toHaveLength(20);
    expect(found.map((f) => f.line)).toEqual(Array.from({ length: 20 }, (_, i) => 3 + i));
  });

  test('two script blocks are an error at the second', async () => {
    const o = await check(
      ['# /// script', '# dependencies = ["six"]', '# ///', '', '# /// script', '# dependencies = []', '# ///', HANDLER].join('\n'),
    );
    expect(o.ok).toBe(false);
    expect(o.script).toBeUndefined();
    const [f] = only(o, 'script_metadata_invalid');
    expect(f).toMatchObject({ severity: 'error', line: 5, col: 1 });
    expect(f.message).toMatch(/2 '# \/\/\/ script' blocks \(lines 1, 5\)/);
  });
});

describe('requires-python is judged against the sandbox interpreter', () => {
  test('a specifier excluding it is an error at its line; one admitting it is not', async () => {
    const o = await check(['# /// script', '# requires-python = ">=3.12"', '# ///', HANDLER].join('\n'));
    expect(o.ok).toBe(false);
    const [f] = only(o, 'requires_python_mismatch');
    expect(f).toMatchObject({ severity: 'error', line: 2, col: 3 });
    // The version the checker names is the container's interpreter, the Debian python3.11 the image is built from.
    const host = spawnSync('/usr/bin/python3.11', ['-c', 'import platform; print(platform.python_version())']).stdout.toString().trim();
    expect(f.message).toBe(`requires-python is '>=3.12', but the sandbox runs Python ${host}`);
    expect(o.script).toEqual({ dependencies: [], requiresPython: '>=3.12', line: 1 });
    const [major, minor] = host.split('.');
    const fits = await check(['# /// script', `# requires-python = "==${major}.${minor}.*"`, '# ///', HANDLER].join('\n'));
    expect(fits.ok).toBe(true);
    const bad = await check(['# /// script', '# requires-python = "three"', '# ///', HANDLER].join('\n'));
    expect(only(bad, 'script_metadata_invalid')).toEqual([expect.objectContaining({ line: 2 })]);
  });
});

describe('external imports', () => {
  test('every top-level module outside the stdlib, once, with its place and whether the file loads without it', async () => {
    const source = [
      'import json, os.path', // stdlib: not reported
      'import numpy as np', // 2
      'from requests.adapters import HTTPAdapter', // 3
      'try:',
      '    import orjson', // 5: guarded
      'except ImportError:',
      '    orjson = None',
      'try:',
      '    from ujson import dumps', // 9: guarded by a tuple naming ModuleNotFoundError
      'except (ValueError, ModuleNotFoundError):',
      '    dumps = None',
      'try:',
      '    import yaml', // 13: a handler for ValueError only does not guard
      'except ValueError:',
      '    yaml = None',
      'from typing import TYPE_CHECKING',
      'if TYPE_CHECKING:',
      '    import pandas', // 18: never runs
      'try:',
      '    def later():',
      '        import scipy', // 21: runs only when called
      'except Exception:',
      '    pass',
      'from . import sibling', // relative: not reported
      'import cffi', // forbidden: a finding already, not an external import
      'import __future__, __main__', // always present
      'def handler(payload):',
      '    try:',
      '        import orjson', // 29: guarded again
      '    except:',
      '        pass',
      '    import numpy', // 32: numpy's first unguarded import stays line 2
      '    import six', // 33: runs only when called
      '    return [np, HTTPAdapter, dumps, yaml, later, sibling, cffi, numpy, six]',
      'import sys',
      'if sys.version_info[0] == 2:',
      '    import StringIO', // 37: a branch (a compatibility shim's Python 2 side)
      'for _ in range(1):',
      '    import simplejson', // 39: a loop's body
      '',
    ].join('\n');
    const o = await check(source);
    expect(only(o, 'forbidden_import')).toHaveLength(1);
    expect(o.externalImports).toEqual([
      { module: 'numpy', line: 2, col: 1, guarded: false },
      { module: 'requests', line: 3, col: 1, guarded: false },
      { module: 'orjson', line: 5, col: 5, guarded: true },
      { module: 'ujson', line: 9, col: 5, guarded: true },
      { module: 'yaml', line: 13, col: 5, guarded: false },
      { module: 'pandas', line: 18, col: 5, guarded: true },
      { module: 'scipy', line: 21, col: 9, guarded: true },
      { module: 'six', line: 33, col: 5, guarded: true },
      { module: 'StringIO', line: 37, col: 5, guarded: true },
      { module: 'simplejson', line: 39, col: 5, guarded: true },
    ]);
    // Not a finding of the checker's: the host decides once it knows the layer.
    expect(o.findings.map((f) => f.code)).not.toContain('script_metadata_invalid');
  });

  test('an unguarded import later makes a guarded one required; columns count characters', async () => {
    const o = await check(['try:', '    import lxml', 'except ImportError:', '    pass', 'ä = 1; import lxml.etree', HANDLER].join('\n'));
    expect(o.externalImports).toEqual([{ module: 'lxml', line: 5, col: 8, guarded: false }]);
  });

  test('a file with only the stdlib has none', async () => {
    const o = await check(['import asyncio, json, collections.abc', 'from email.message import EmailMessage', HANDLER].join('\n'));
    expect(o.externalImports).toEqual([]);
  });
});

describe("the block reader is the PEP's reference expression, in linear time", () => {
  const CHECKER_DIR = path.join(__dirname, '..', 'sandbox', 'image');
  /** Runs Python with the checker module imported (it parses only; nothing of a file runs). */
  const python = (code: string) => {
    const res = spawnSync(
      '/usr/bin/python3.11',
      ['-I', '-S', '-c', `import sys; sys.path.insert(0, ${JSON.stringify(CHECKER_DIR)}); import checker\n${code}`],
      {
        timeout: 120_000,
      },
    );
    if (res.status !== 0) throw new Error(res.stderr.toString());
    return res.stdout.toString().trim();
  };

  test('finds the same blocks, with the same content, as the reference regex on 50000 generated files', () => {
    const out = python(`
import random
def reference(text):
    return [(m.group("type"), text.count("\\n", 0, m.start()), text.count("\\n", 0, m.end()),
             "".join(l[2:] if l.startswith("# ") else l[1:] for l in m.group("content").splitlines(keepends=True)))
            for m in checker.PEP723_REGEX.finditer(text)]
pieces = ["# /// script", "# /// a-b", "# ///", "#", "# x = 1", "#x", "x = 1", "", " # ///", "# ///  ", "# /// script ", "#  a"]
rnd = random.Random(723)
blocks = 0
for _ in range(50000):
    text = "\\n".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 16))) + rnd.choice(["", "\\n"])
    ours = checker.metadata_blocks(text)
    if ours != reference(text):
        print("differ", repr(text), ours, reference(text))
        break
    blocks += len(ours)
else:
    print("same", blocks)
`);
    expect(out).toMatch(/^same \d+$/);
    expect(Number(out.split(' ')[1])).toBeGreaterThan(1000); // the generator does make blocks
  });

  test('a file of 25000 block openings and no close is checked in the container (the regex would take tens of seconds)', async () => {
    const o = await check('# /// a\n'.repeat(25000) + HANDLER);
    expect(o.findings.map((f) => f.code)).toEqual([]);
    expect(o.ok).toBe(true);
  });
});
