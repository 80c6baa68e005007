/**
 * Handlers with PEP 723 dependencies, end to end: upload → static check → RESOLVING_DEPENDENCIES → a
 * sandbox run with the lock's layer → VALIDATED, and tasks run with their version's layer. A real Temporal
 * dev server, real gVisor sandboxes, the real uv, and a real package index on loopback (pypiserver)
 * serving wheels this suite builds: a pure-Python package in two versions, a C extension, an sdist only.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import type { Config } from '../src/config';
import { formatValidation } from '../src/client/format';
import { removeTree } from '../src/dependencies';
import { validationWorkflowId, type ValidationStatus } from '../domain/validation';
import type { TaskState } from '../domain/task';
import { startPipeline, type Pipeline } from './helpers/pipeline';
import { buildCExtensionWheel, buildSdist, buildWheel, startPackageIndex, type PackageIndex } from './helpers/package-index';
import { startTemporal, type StartedTemporal } from './helpers/temporal';
import { ALICE, statusOf, suiteConfig, upload, waitForStatus } from './helpers/validation';

jest.setTimeout(180000);

let temporal: StartedTemporal;
let index: PackageIndex;
let config: Config;
let pipeline: Pipeline;
let packages: string;

const as = { Authorization: `Bearer ${ALICE}` };

const handler = (deps: string[], body: string): string => `# /// script\n# dependencies = ${JSON.stringify(deps)}\n# ///\n${body}`;

const ANSWERING = handler(
  ['tinyanswer>=2', 'cfast'],
  `import cfast
import tinyanswer


def handler(payload):
    return {"answer": tinyanswer.ANSWER, "sum": cfast.add(payload.get("a", 1), 2)}
`,
);

async function validate(name: string, source: string): Promise<ValidationStatus> {
  const res = await upload(pipeline.api.app, ALICE, name, source);
  expect(res.status).toBe(202);
  return waitForStatus(pipeline.api.app, ALICE, res.body.validation_id);
}

async function runTask(title: string, payload: Record<string, unknown> = {}, scheduledAt?: number): Promise<string> {
  const res = await request(pipeline.api.app)
    .post('/tasks/')
    .set(as)
    .send({ title, payload, ...(scheduledAt ? { scheduled_at: scheduledAt } : {}) });
  expect(res.status).toBe(201);
  return res.body.task_id as string;
}

async function taskEnd(id: string, timeoutMs = 90000): Promise<TaskState> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const res = await request(pipeline.api.app).get(`/tasks/${id}`).set(as);
    expect(res.status).toBe(200);
    if (['COMPLETED', 'FAILED', 'CANCELLED'].includes(res.body.status)) return res.body as TaskState;
    if (Date.now() > until) throw new Error(`task ${id} still ${res.body.status}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

const errors = (s: ValidationStatus) => s.findings.filter((f) => f.severity === 'error').map((f) => f.code);

beforeAll(async () => {
  packages = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-index-'));
  buildWheel(packages, { name: 'tinyanswer', version: '1.0', files: { 'tinyanswer/__init__.py': 'ANSWER = 41\n' } });
  buildWheel(packages, { name: 'tinyanswer', version: '2.0', files: { 'tinyanswer/__init__.py': 'ANSWER = 42\n' } });
  buildCExtensionWheel(packages, 'cfast', '1.0', 'cfast', 7);
  buildSdist(packages, 'onlysource', '1.0', path.join(packages, 'setup-py-ran'));
  buildWheel(packages, {
    name: 'bulky',
    version: '1.0',
    files: { 'bulky/__init__.py': `DATA = ${JSON.stringify('x'.repeat(2_200_000))}\n` },
  });
  [temporal, index] = await Promise.all([startTemporal(), startPackageIndex(packages)]);
  config = suiteConfig(temporal.address, { PACKAGE_INDEX_URL: index.url, QUOTA_LAYER_MIB: '2' });
  pipeline = await startPipeline(config, temporal);
}, 240000);

afterAll(async () => {
  await pipeline?.stop();
  await temporal?.stop();
  await index?.stop();
  if (packages) fs.rmSync(packages, { recursive: true, force: true });
});

test("a file importing its dependencies validates with their lock, and its tasks return the packages' answer", async () => {
  const s = await validate('answering', ANSWERING);
  expect(errors(s)).toEqual([]);
  expect(s.status).toBe('VALIDATED');
  expect(s.dependencies).toEqual({
    requirements: ['tinyanswer>=2', 'cfast'],
    lock_sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    pins: [
      { name: 'cfast', version: '1.0' },
      { name: 'tinyanswer', version: '2.0' },
    ],
  });
  expect(s.metrics.layer_bytes).toBeGreaterThan(0);
  // What `taskflow status` prints.
  const text = formatValidation(s, 'answering.py');
  expect(text).toContain(
    `dependencies: tinyanswer>=2, cfast (lock ${s.dependencies!.lock_sha256.slice(0, 12)})\n  cfast==1.0\n  tinyanswer==2.0`,
  );
  // The status went through the dependency step.
  const history = await temporal.env.client.workflow.getHandle(validationWorkflowId(s.validation_id)).fetchHistory();
  expect(JSON.stringify(history.events)).toContain('resolveDependencies');

  const task = await taskEnd(await runTask('answering', { a: 40 }));
  expect(task.status).toBe('COMPLETED');
  expect(task.result).toEqual({ answer: 42, sum: 42 });
  expect(task.lock_sha256).toBe(s.dependencies!.lock_sha256);
});

test('an unresolvable requirement and an sdist-only one are REJECTED with their findings, and no setup.py runs', async () => {
  const missing = await validate('missing_dep', handler(['no-such-package-anywhere'], 'def handler(payload):\n    return 1\n'));
  expect(missing.status).toBe('REJECTED');
  expect(errors(missing)).toEqual(['dependency_unresolvable']);
  const sdist = await validate('sdist_dep', handler(['onlysource'], 'def handler(payload):\n    return 1\n'));
  expect(sdist.status).toBe('REJECTED');
  expect(errors(sdist)).toEqual(['dependency_no_wheel']);
  expect(fs.existsSync(path.join(packages, 'setup-py-ran'))).toBe(false);
});

test('importing a package the file does not declare is undeclared_import; declared ones are not; a guarded one is a warning', async () => {
  const s = await validate(
    'undeclared',
    handler(
      ['tinyanswer'],
      `import tinyanswer
import yaml

try:
    import ujson
except ImportError:
    ujson = None


def handler(payload):
    return tinyanswer.ANSWER
`,
    ),
  );
  expect(s.status).toBe('REJECTED');
  const undeclared = s.findings.filter((f) => f.code === 'undeclared_import');
  expect(undeclared.map((f) => [f.severity, f.line])).toEqual([
    ['error', 5],
    ['warning', 8],
  ]);
  expect(undeclared[0].message).toContain("'yaml'");
  // Without a block, only the standard library is there.
  const bare = await validate('bare_import', 'import tinyanswer\n\n\ndef handler(payload):\n    return 1\n');
  expect(bare.status).toBe('REJECTED');
  expect(errors(bare)).toEqual(['undeclared_import']);
  // In the handler's body the import may not run at load: a warning, and the sandbox run decides.
  const lazy = await validate('lazy_import', 'def handler(payload):\n    import yaml\n    return 1\n');
  expect(lazy.findings.filter((f) => f.code === 'undeclared_import').map((f) => [f.severity, f.line])).toEqual([['warning', 2]]);
  expect(lazy.status).toBe('REJECTED');
  expect(errors(lazy)).toEqual(['handler_raised']);
});

test("the owner's layer bytes beyond QUOTA_LAYER_MIB are dependency_quota_exceeded", async () => {
  const s = await validate('too_bulky', handler(['bulky'], 'import bulky\n\n\ndef handler(payload):\n    return len(bulky.DATA)\n'));
  expect(s.status).toBe('REJECTED');
  expect(errors(s)).toEqual(['dependency_quota_exceeded']);
});

test('the index down at validation is retried, not rejected, and the file validates once it is back', async () => {
  await index.stop();
  let res;
  try {
    // Declared, not imported: what is tested is the dependency step's retry, not the layer.
    res = await upload(pipeline.api.app, ALICE, 'while_down', handler(['tinyanswer'], 'def handler(payload):\n    return 1\n'));
    expect(res.status).toBe(202);
    const handle = temporal.env.client.workflow.getHandle(validationWorkflowId(res.body.validation_id));
    // Wait for a second attempt of the dependency step: the first failed on the index and was retried.
    const until = Date.now() + 60000;
    for (;;) {
      const d = await handle.describe();
      const pending = d.raw.pendingActivities?.find((a) => a.activityType?.name === 'resolveDependencies');
      if ((pending?.attempt ?? 0) >= 2) break;
      if (Date.now() > until) throw new Error('the dependency step was not retried');
      await new Promise((r) => setTimeout(r, 250));
    }
    expect((await statusOf(pipeline.api.app, ALICE, res.body.validation_id)).status).toBe('RESOLVING_DEPENDENCIES');
  } finally {
    await index.start();
  }
  const s = await waitForStatus(pipeline.api.app, ALICE, res.body.validation_id, undefined, 120000);
  expect(errors(s)).toEqual([]);
  expect(s.status).toBe('VALIDATED');
});

test("a layer removed from a worker's cache is rebuilt from the lock, and the task still runs", async () => {
  const s = await statusOf(pipeline.api.app, ALICE, (await latest('answering')).validation_id);
  const dir = path.join(config.dependencies.cacheDir, 'layers', s.dependencies!.lock_sha256);
  expect(fs.existsSync(dir)).toBe(true);
  removeTree(dir);
  const task = await taskEnd(await runTask('answering', { a: 1 }));
  expect(task.status).toBe('COMPLETED');
  expect(task.result).toEqual({ answer: 42, sum: 3 });
  expect(fs.existsSync(path.join(dir, 'tinyanswer', '__init__.py'))).toBe(true);
});

test('a task of version 1 runs with lock 1 after version 2, with a new lock, is promoted', async () => {
  const body = 'import tinyanswer\n\n\ndef handler(payload):\n    return tinyanswer.ANSWER\n';
  const v1 = await validate('pinned', handler(['tinyanswer==1.0'], body));
  expect(v1.status).toBe('VALIDATED');
  // Scheduled a few seconds ahead: it starts only after version 2 is promoted.
  const early = await runTask('pinned', {}, Math.ceil(Date.now() / 1000) + 8);
  const v2 = await validate('pinned', handler(['tinyanswer==2.0'], body));
  expect(v2.status).toBe('VALIDATED');
  expect(v2.promoted).toBe(true);
  expect(v2.dependencies!.lock_sha256).not.toBe(v1.dependencies!.lock_sha256);
  const late = await taskEnd(await runTask('pinned'));
  const first = await taskEnd(early);
  expect(Date.parse(first.started_at!)).toBeGreaterThan(Date.parse(v2.finished_at!));
  expect([first.result, first.lock_sha256]).toEqual([41, v1.dependencies!.lock_sha256]);
  expect([late.result, late.lock_sha256]).toEqual([42, v2.dependencies!.lock_sha256]);
});

async function latest(name: string): Promise<{ validation_id: string }> {
  const p = await pipeline.api.storage.files.promotion('alice', name);
  if (!p) throw new Error(`${name} is not promoted`);
  return p;
}
