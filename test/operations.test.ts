/**
 * The operator's side of a running process, against a real Temporal dev server: search attributes
 * registered from their one definition.
 */
import { randomUUID } from 'node:crypto';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { msToTs } from '@temporalio/common/lib/time';
import { ensureSearchAttributes } from '../app/temporal';
import { SEARCH_ATTRIBUTES } from '../domain/search-attributes';
import { silentLogger } from '../src/logger';
import { startTemporal, type StartedTemporal } from './helpers/temporal';
import { suiteConfig } from './helpers/validation';

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
