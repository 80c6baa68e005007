/**
 * The corpus of ordinary, well-written task files (test/fixtures/corpus): every one is VALIDATED
 * end to end — the API (supertest), a real Temporal dev server, the validation worker in this
 * process and real gVisor sandboxes — with no error findings. One server and one worker for the
 * whole corpus, a few uploads in flight at a time.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Worker, WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Config } from '../src/config';
import { silentLogger } from '../src/logger';
import { bundleValidationWorkflows, createValidationWorker } from '../app/validation-worker';
import type { Sandbox } from '../sandbox';
import type { ValidationStatus } from '../domain/validation';
import { startSandbox } from './helpers/sandbox';
import { startTemporal, type StartedTemporal } from './helpers/temporal';
import { ALICE, buildApi, promotedSource, suiteConfig, upload, waitForStatus, type TestApi } from './helpers/validation';
import { CORPUS, CORPUS_WARNINGS, corpusFiles } from './helpers/corpus';

const IN_FLIGHT = 3;

let temporal: StartedTemporal;
let config: Config;
let sandbox: Sandbox;
let api: TestApi;
let worker: Worker;
let running: Promise<void>;
const results = new Map<string, ValidationStatus>();

beforeAll(async () => {
  let bundle: WorkflowBundleWithSourceMap;
  [temporal, bundle] = await Promise.all([startTemporal(), bundleValidationWorkflows()]);
  config = suiteConfig(temporal.address, { SANDBOX_POOL_SIZE: '2' });
  sandbox = await startSandbox(config, { validationPool: true });
  api = await buildApi(config, temporal.env.client);
  worker = await createValidationWorker({
    config,
    sandbox,
    storage: api.storage,
    connection: temporal.env.nativeConnection,
    log: silentLogger,
    workflowBundle: bundle,
  });
  running = worker.run();

  // Every file through the pipeline once, IN_FLIGHT at a time; the tests below read the outcomes.
  const queue = [...corpusFiles()];
  const lane = async () => {
    for (let file = queue.shift(); file; file = queue.shift()) {
      const name = path.basename(file, '.py');
      const res = await upload(api.app, ALICE, name, fs.readFileSync(path.join(CORPUS, file)));
      if (res.status !== 202) throw new Error(`${file}: upload answered ${res.status} ${JSON.stringify(res.body)}`);
      results.set(file, await waitForStatus(api.app, ALICE, res.body.validation_id, undefined, 120_000));
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
}, 900_000);

afterAll(async () => {
  worker?.shutdown();
  await running;
  await sandbox?.close();
  await temporal?.stop();
});

test('the corpus has at least 40 files, among them a BOM + CRLF one', () => {
  expect(corpusFiles().length).toBeGreaterThanOrEqual(40);
  const windows = fs.readFileSync(path.join(CORPUS, 'windows_bom_crlf.py'));
  expect(windows.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
  expect(windows.toString('latin1')).toContain('\r\n');
});

test.each(corpusFiles())('%s is VALIDATED, every payload ok, no error findings', async (file) => {
  const s = results.get(file);
  expect(s).toBeDefined();
  const errors = s!.findings.filter((f) => f.severity === 'error');
  expect({ file, status: s!.status, errors }).toEqual({ file, status: 'VALIDATED', errors: [] });
  expect(s!.findings.map((f) => f.code).sort()).toEqual(CORPUS_WARNINGS[file] ?? []);
  expect(s!.metrics.payloads_total).toBeGreaterThan(0);
  expect(s!.metrics.payloads_ok).toBe(s!.metrics.payloads_total);
  expect(await promotedSource(api.storage, 'alice', path.basename(file, '.py'))).toBe(fs.readFileSync(path.join(CORPUS, file), 'utf8'));
});
