/**
 * What a dependency layer costs inside the sandbox, against no layer in the same run: a validation
 * run (with a layer it cannot take a warm container: the mount is fixed when a container is made),
 * a cold run, the load of a handler importing the layer's packages, a warm keyed call, and the static
 * check of a file with a PEP 723 block (the checker loads `packaging` only then).
 * Run: bash scripts/bench.sh sandbox-layer [--runs N] [--calls N] [--no-write]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config';
import { createLogger } from '../src/logger';
import { createSandbox, sha256, type RunOutcome, type RunRequest } from '../sandbox';
import { buildLayer, layerId } from '../test/helpers/layer';
import { fmt, percentile, writeSection } from './report';

const PLAIN = 'def handler(payload):\n    return {"n": payload.get("n", 0) + 1}\n';
const LAYERED =
  'import fastmath\nimport tinypkg\n\n\ndef handler(payload):\n    return {"n": fastmath.add(payload.get("n", 0), 1), "a": tinypkg.answer()}\n';
const BLOCK = '# /// script\n# requires-python = ">=3.11"\n# dependencies = ["tinypkg>=1,<2", "fastmath==0.1"]\n# ///\n' + LAYERED;

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

function ok(o: RunOutcome): RunOutcome {
  if (o.status !== 'ok') throw new Error(`benchmark run failed (${o.status}): ${JSON.stringify(o.payloads)} ${JSON.stringify(o.load)}`);
  return o;
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = process.hrtime.bigint();
  const v = await fn();
  return [Number(process.hrtime.bigint() - t) / 1e6, v];
}

async function main(): Promise<void> {
  const runs = arg('--runs', 10);
  const calls = arg('--calls', 200);
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'warn' });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-bench-layer-'));
  fs.chmodSync(root, 0o755);
  buildLayer(path.join(root, 'layer'), 42);
  const layer = { id: layerId('bench'), hostDir: path.join(root, 'layer') };
  const sandbox = await createSandbox(config.sandbox, createLogger('warn'), { validationPool: true, keyedLimits: config.taskLimits });
  const rows: string[] = [];
  const row = (name: string, v: number[]) =>
    `| ${name} | ${v.length} | ${fmt(percentile(v, 50))} | ${fmt(percentile(v, 90))} | ${fmt(Math.min(...v))} |`;
  try {
    const plain: RunRequest = { source: PLAIN, fileName: 'plain.py', payloads: [{}] };
    const layered: RunRequest = { source: LAYERED, fileName: 'layered.py', payloads: [{}], layer };
    const series: Record<string, number[]> = {};
    const add = (k: string, v: number) => (series[k] ??= []).push(v);
    // Interleaved, so the machine's drift falls on both sides alike.
    for (let i = 0; i < runs; i++) {
      add('validate, no layer (warm pool)', (await timed(async () => ok(await sandbox.validate(plain))))[0]);
      const [ms, o] = await timed(async () => ok(await sandbox.validate(layered)));
      add('validate, layer (container made for it)', ms);
      add('load, layer (in that run)', o.load.wallMs);
      add('runCold, no layer', (await timed(async () => ok(await sandbox.runCold(plain))))[0]);
      add('runCold, layer', (await timed(async () => ok(await sandbox.runCold(layered))))[0]);
      const [, p] = await timed(async () => ok(await sandbox.runCold(plain)));
      add('load, no layer (in a cold run)', p.load.wallMs);
      add('check, no block', (await timed(() => sandbox.check({ source: LAYERED, fileName: 'a.py' })))[0]);
      add('check, PEP 723 block', (await timed(() => sandbox.check({ source: BLOCK, fileName: 'a.py' })))[0]);
    }
    const keyedPlain = { owner: 'bench', sha256: sha256(PLAIN) };
    const keyedLayered = { owner: 'bench', sha256: sha256(LAYERED) };
    ok(await sandbox.runKeyed(keyedPlain, plain));
    ok(await sandbox.runKeyed(keyedLayered, layered));
    for (let i = 0; i < calls; i++) {
      add('warm keyed call, no layer', (await timed(async () => ok(await sandbox.runKeyed(keyedPlain, plain))))[0]);
      add('warm keyed call, layer', (await timed(async () => ok(await sandbox.runKeyed(keyedLayered, layered))))[0]);
    }
    for (const [k, v] of Object.entries(series)) rows.push(row(k, v));
  } finally {
    await sandbox.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
  const body = [
    '## Sandbox: a dependency layer against none (issue 17, the sandbox side)',
    '',
    'The layer is built by the bench (a pure-Python package and a C extension; `test/helpers/layer.ts`), mounted',
    'read-only at `/deps`. ms; "load" is the agent\'s own load time inside the sandbox.',
    '',
    '| what | n | p50 | p90 | min |',
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  console.log(body);
  if (!process.argv.includes('--no-write'))
    writeSection('sandbox-layer', `bash scripts/bench.sh sandbox-layer --runs ${runs} --calls ${calls}`, body);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
