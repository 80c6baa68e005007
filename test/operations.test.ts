/**
 * The operator's side of a running process, against a real Temporal dev server: search attributes
 * registered from their one definition; every line a worker process prints, the Temporal SDK's included,
 * in one format.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { msToTs } from '@temporalio/common/lib/time';
import { ensureSearchAttributes } from '../app/temporal';
import { SEARCH_ATTRIBUTES } from '../domain/search-attributes';
import { silentLogger } from '../src/logger';
import { startTemporal, type StartedTemporal } from './helpers/temporal';
import { suiteConfig, suiteEnv } from './helpers/validation';

const ROOT = path.resolve(__dirname, '..');

let temporal: StartedTemporal;

beforeAll(async () => {
  temporal = await startTemporal();
});

afterAll(async () => {
  await temporal?.stop();
});

describe('search attributes', () => {
  test('a namespace that lacks them gets each with its own type, once', async () => {
    // A fresh namespace has none of TaskFlow's attributes (the harness registers them in its own namespace only).
    const namespace = `bare-${randomUUID().slice(0, 8)}`;
    const { connection } = temporal.env;
    await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
    const config = suiteConfig(temporal.address, { TEMPORAL_NAMESPACE: namespace });
    const list = async () => (await connection.operatorService.listSearchAttributes({ namespace })).customAttributes ?? {};
    expect(Object.keys(await list())).toEqual(expect.not.arrayContaining(SEARCH_ATTRIBUTES.map((k) => k.name)));

    const logged: string[] = [];
    const log = { ...silentLogger, info: (m: string) => void logged.push(m), warn: (m: string) => void logged.push(m) };
    await expect(ensureSearchAttributes(temporal.env.client, config, log)).resolves.toBe(true);
    const have = await list();
    for (const k of SEARCH_ATTRIBUTES) expect(have[k.name]).toBe(encodeSearchAttributeIndexedValueType(k.type));
    expect(logged).toEqual(['registered search attributes']);

    // Idempotent: nothing left to add, nothing logged.
    await expect(ensureSearchAttributes(temporal.env.client, config, log)).resolves.toBe(true);
    expect(logged).toHaveLength(1);
  });

  test('a namespace that cannot take them is reported, not thrown', async () => {
    const config = suiteConfig(temporal.address, { TEMPORAL_NAMESPACE: 'no-such-namespace' });
    const warned: string[] = [];
    const log = { ...silentLogger, warn: (m: string) => void warned.push(m) };
    await expect(ensureSearchAttributes(temporal.env.client, config, log)).resolves.toBe(false);
    expect(warned[0]).toMatch(/register them by hand/);
  });
});

test("a worker process's lines are all one JSON format, the Temporal SDK's and its core's included", async () => {
  const child = spawn(process.execPath, [require.resolve('ts-node/dist/bin'), '--transpile-only', path.join(ROOT, 'app/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...suiteEnv(temporal.address), TASKFLOW_ROLES: 'validation-worker', LOG_LEVEL: 'info', SANDBOX_POOL_SIZE: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "validation worker polling" in 60 s:\n${stderr.slice(-3000)}`)), 60000);
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
      if (stderr.includes('"msg":"validation worker polling"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => reject(new Error(`exited ${code}:\n${stderr.slice(-3000)}`)));
  });
  child.kill('SIGTERM'); // the worker's shutdown makes the SDK and its core log at INFO
  expect(await exited).toBe(0);

  expect(stdout).toBe('');
  const lines = stderr.split('\n').filter(Boolean).map((l) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      throw new Error(`not a JSON line: ${l}`);
    }
  });
  for (const l of lines) expect(l).toMatchObject({ level: expect.any(String), time: expect.any(String), service: 'taskflow', msg: expect.any(String) });
  const from = (c: string) => lines.filter((l) => l.component === 'temporal' && l.sdkComponent === c);
  expect(from('worker').map((l) => l.msg)).toContain('Worker state changed');
  expect(from('core').length).toBeGreaterThan(0);
}, 90000);
