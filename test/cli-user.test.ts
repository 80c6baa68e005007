/**
 * The user CLI (`npx taskflow upload|run|status|tasks|cancel|delete`) end to end, run as a user runs
 * it — a separate process talking HTTP — against a real API server on a loopback port, a real
 * Temporal dev server, the validation and task workers, and real gVisor sandboxes. One server for
 * the suite; each test starts a handful of CLI processes.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Config } from '../src/config';
import { bundleTaskWorkflows } from '../app/task-worker';
import { testConfig } from './helpers/sandbox';
import { startPipeline, type Pipeline } from './helpers/pipeline';
import { startTemporal, type StartedTemporal } from './helpers/temporal';
import { ALICE, suiteEnv, type TestApi } from './helpers/validation';
import { CORPUS } from './helpers/corpus';

const BIN = path.join(__dirname, '..', 'bin', 'taskflow.js');
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-cli-'));

let temporal: StartedTemporal;
let config: Config;
let api: TestApi;
let server: http.Server;
let url: string;
let pipeline: Pipeline | undefined;

beforeAll(async () => {
  let bundle: WorkflowBundleWithSourceMap;
  [temporal, bundle] = await Promise.all([startTemporal(), bundleTaskWorkflows()]);
  config = testConfig(suiteEnv(temporal.address, { TASK_WORKER_SLOTS: '1', TASK_PAYLOAD_TIMEOUT_MS: '60000' }));
  pipeline = await startPipeline(config, temporal, { workflowBundle: bundle });
  ({ api } = pipeline);
  server = http.createServer(api.app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 240000);

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await pipeline?.stop();
  await temporal?.stop();
  fs.rmSync(WORK, { recursive: true, force: true });
});

interface Ran {
  code: number | null;
  out: string;
  err: string;
}

/** `taskflow ARGS...` as a user runs it; the server and token come from the environment unless `env` says otherwise. */
function taskflow(args: string[], env: Record<string, string | undefined> = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TASKFLOW_URL: url, TASKFLOW_TOKEN: ALICE, ...env } as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

function file(name: string, source: string): string {
  const p = path.join(WORK, name);
  fs.writeFileSync(p, source);
  return p;
}

const GREET = `"""Greets."""
import logging

logger = logging.getLogger(__name__)


def handler(payload):
    if payload.get("fail"):
        raise ValueError("asked to fail")
    if payload.get("sleep"):
        import time
        time.sleep(payload["sleep"])
    return {"greeting": "hello " + payload.get("name", "world")}
`;

const TYPO = `import os


def handler(payload):
    name = payload.get("name", "world")
    return {"greeting": "hello " + pyload["name"], "n": name}
`;

test('upload --wait shows the progress, the verdict, and exits 0 when VALIDATED', async () => {
  const r = await taskflow(['upload', file('greet.py', GREET), '--wait']);
  expect(r.code).toBe(0);
  const progress = r.err.trim().split('\n');
  expect(progress[0]).toBe('greet.py: PENDING');
  expect(progress[progress.length - 1]).toBe('greet.py: VALIDATED');
  expect(progress.map((l) => l.replace('greet.py: ', ''))).toEqual(expect.arrayContaining(['PENDING', 'VALIDATED']));
  expect(r.out).toMatch(/^greet\.py: VALIDATED \(0 errors, 0 warnings; validation [0-9a-f]{32}\)\n/);
  expect(r.out).toContain('taskflow run greet');
});

test('upload --wait prints findings like a compiler and exits 1 when REJECTED', async () => {
  const r = await taskflow(['upload', file('typo.py', TYPO), '--wait', '--name', 'typo_task']);
  expect(r.code).toBe(1);
  expect(r.out).toContain('typo.py: REJECTED (1 error, 1 warning; validation ');
  expect(r.out).toContain(
    [
      "typo.py:6:36: error undefined_name: 'pyload' is not defined",
      '        return {"greeting": "hello " + pyload["name"], "n": name}',
      `${' '.repeat(4 + 35)}^`,
    ].join('\n'),
  );
  expect(r.out).toContain("typo.py:1:1: warning unused_import: 'os' imported but unused\n    import os\n    ^");
  expect(r.err).toContain('typo.py: REJECTED');
});

test('upload --json prints the final status as JSON; --payload becomes test payloads', async () => {
  const ok = await taskflow(['upload', file('greet2.py', GREET), '--name', 'greet2', '--payload', '{"name": "ada"}', '--wait', '--json']);
  expect(ok.code).toBe(0);
  const s = JSON.parse(ok.out);
  expect(s).toMatchObject({ status: 'VALIDATED', file_name: 'greet2', metrics: { payloads_total: 1, payloads_ok: 1 } });
  expect(ok.err).toBe(''); // no progress chatter in JSON mode

  const bad = await taskflow(['upload', file('greet3.py', GREET), '--payload', '{"fail": true}', '--wait', '--json']);
  expect(bad.code).toBe(1);
  const rejected = JSON.parse(bad.out);
  expect(rejected.status).toBe('REJECTED');
  expect(rejected.findings).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'handler_raised', severity: 'error' })]));
});

test('upload without --wait answers at once; status --wait follows the validation', async () => {
  const up = await taskflow(['upload', file('later.py', GREET), '--json']);
  expect(up.code).toBe(0);
  const { validation_id, status } = JSON.parse(up.out);
  expect(status).toBe('PENDING');
  const s = await taskflow(['status', validation_id, '--wait']);
  expect(s.code).toBe(0);
  expect(s.out).toMatch(/^later\.py: VALIDATED/);
});

test('run --wait prints the result; a raising handler prints its error and traceback and exits 1', async () => {
  await taskflow(['upload', file('greeter.py', GREET), '--wait']);
  const ok = await taskflow(['run', 'greeter', '--payload', '{"name": "ada"}', '--priority', 'high', '--wait']);
  expect(ok.code).toBe(0);
  expect(ok.out).toMatch(/^task [0-9a-f-]{36} \(greeter, high priority\): COMPLETED in \d+ ms\n\{\n {2}"greeting": "hello ada"\n\}\n$/);

  const failed = await taskflow(['run', 'greeter', '--payload', '{"fail": true}', '--wait']);
  expect(failed.code).toBe(1);
  expect(failed.out).toContain('FAILED');
  expect(failed.out).toContain('asked to fail');
  expect(failed.out).toMatch(/Traceback \(most recent call last\):[\s\S]*greeter\.py", line 9, in handler/);
});

test('run --json, status, tasks and cancel', async () => {
  await taskflow(['upload', file('sleepy.py', GREET), '--wait']);
  // Long enough to be still running when the next CLI process (a few seconds to start on a busy machine) cancels it.
  const started = await taskflow(['run', 'sleepy', '--payload', '{"sleep": 50}', '--json']);
  expect(started.code).toBe(0);
  const { task_id } = JSON.parse(started.out);
  const cancelled = await taskflow(['cancel', task_id]);
  expect(cancelled).toMatchObject({ code: 0, out: expect.stringContaining(`task ${task_id}: cancellation requested`) });
  const final = await taskflow(['status', task_id, '--wait', '--json']);
  expect(final.code).toBe(1);
  expect(JSON.parse(final.out).status).toBe('CANCELLED');

  // The list comes from Temporal visibility, which may take a moment to show the new status.
  let listed: string[] = [];
  for (let i = 0; i < 5 && !listed.includes(task_id); i++) {
    const list = await taskflow(['tasks', '--status', 'cancelled', '--json']);
    expect(list.code).toBe(0);
    listed = JSON.parse(list.out).tasks.map((t: { task_id: string }) => t.task_id);
  }
  expect(listed).toContain(task_id);
  const table = await taskflow(['tasks', '--name', 'sleepy']);
  expect(table.out.split('\n')[0]).toMatch(/^TASK ID\s+NAME\s+STATUS\s+PRIORITY\s+CREATED$/);
  expect(table.out).toMatch(new RegExp(`${task_id}\\s+sleepy\\s+CANCELLED\\s+low`));
});

test('on a terminal: progress redrawn on one line, verdict and findings in colour', async () => {
  // `script` (util-linux, Essential on Debian) gives the CLI a pseudo-terminal, as a user's shell does.
  const cmd = [process.execPath, BIN, 'upload', file('typo_tty.py', TYPO), '--wait'].map((a) => `'${a}'`).join(' ');
  const r = await new Promise<Ran>((resolve, reject) => {
    const child = spawn('script', ['-qec', cmd, '/dev/null'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TERM: 'xterm', TASKFLOW_URL: url, TASKFLOW_TOKEN: ALICE } as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err: '' }));
  });
  expect(r.code).toBe(1);
  // Each status as it arrives, redrawn in place (`\r`), ending with the verdict.
  expect(r.out).toMatch(/\rtypo_tty\.py: ([A-Z_]+ → )*REJECTED\r?\n/);
  expect(r.out).toContain('\u001b[1;31mREJECTED\u001b[0m');
  expect(r.out).toContain('\u001b[1;31merror\u001b[0m \u001b[2mundefined_name\u001b[0m');
});

test('a BOM + CRLF file validates and runs as Python reads it', async () => {
  const source = path.join(CORPUS, 'windows_bom_crlf.py');
  const up = await taskflow(['upload', source, '--wait']);
  expect(up.code).toBe(0);
  const run = await taskflow(['run', 'windows_bom_crlf', '--payload', '{"text": "Déjà vu"}', '--wait', '--json']);
  expect(run.code).toBe(0);
  expect(JSON.parse(run.out)).toMatchObject({ status: 'COMPLETED', result: { plain: 'Deja vu', chars: 7 } });
});

test('delete removes a file; running it afterwards is an HTTP error (exit 2)', async () => {
  await taskflow(['upload', file('doomed.py', GREET), '--wait']);
  const del = await taskflow(['delete', 'doomed']);
  expect(del.code).toBe(0);
  expect(del.out.trim()).toBe('deleted doomed');
  const run = await taskflow(['run', 'doomed']);
  expect(run.code).toBe(2);
  expect(run.err).toMatch(/^taskflow run: HTTP 404 \w+: /);
});

test('flags win over the environment; missing token, unreachable server and bad arguments exit 2', async () => {
  const viaFlags = await taskflow(['tasks', '--url', url, '--token', ALICE, '--json'], {
    TASKFLOW_URL: 'http://127.0.0.1:9',
    TASKFLOW_TOKEN: 'wrong',
  });
  expect(viaFlags.code).toBe(0);
  const wrongToken = await taskflow(['tasks'], { TASKFLOW_TOKEN: 'not-a-token-at-all' });
  expect(wrongToken.code).toBe(2);
  expect(wrongToken.err).toMatch(/HTTP 401/);
  const noToken = await taskflow(['tasks'], { TASKFLOW_TOKEN: undefined });
  expect(noToken).toMatchObject({ code: 2, err: expect.stringContaining('TASKFLOW_TOKEN') });
  const down = await taskflow(['tasks', '--url', 'http://127.0.0.1:9']);
  expect(down).toMatchObject({ code: 2, err: expect.stringContaining('cannot reach http://127.0.0.1:9') });
  const usage = await taskflow(['upload', 'x.py', '--bogus']);
  expect(usage).toMatchObject({ code: 2, err: expect.stringContaining("Unknown option '--bogus'") });
  const payload = await taskflow(['run', 'greeter', '--payload', '[1]']);
  expect(payload).toMatchObject({ code: 2, err: expect.stringContaining('--payload must be a JSON object') });
  const help = await taskflow(['--help']);
  expect(help.code).toBe(0);
  expect(help.out).toContain('upload FILE.py [--name NAME] [--payload JSON]... [--wait]');
});
