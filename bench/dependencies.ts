/**
 * Handlers with PEP 723 dependencies from a real package index (PACKAGE_INDEX_URL, default the Python
 * Package Index; a proxy and its CA through the usual HTTPS_PROXY / SSL_CERT_FILE, DEPENDENCY_NATIVE_TLS
 * for uv's --native-tls). In one run, for `requests`, `pydantic` and `numpy` handlers:
 *   - the dependency step alone (src/dependencies): resolve with an empty uv cache, unpack the layer with an
 *     empty cache (download + unpack), resolve again with a warm cache, and the layer found on the host;
 *   - upload → VALIDATED through the whole pipeline: cold (new lock, empty caches) and with the lock's
 *     layer cached on the host, against a standard-library file;
 *   - task create → COMPLETED (HTTP, long poll to the end, warm keyed container) with the layer, against none.
 *   - the sandbox alone: warm keyed calls with a layer mounted and without, and a fresh container per run (import included).
 * Run: bash scripts/bench.sh dependencies [--tasks N] [--keyed N] [--reps N] [--no-write]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { loadConfig, type Config } from '../src/config';
import { LayerCache, removeTree, resolveLock } from '../src/dependencies';
import { sha256 } from '../sandbox';
import type { ValidationStatus } from '../domain/validation';
import { startPipeline, type Pipeline } from '../test/helpers/pipeline';
import { UV_PATH } from '../test/helpers/package-index';
import { startTemporal } from '../test/helpers/temporal';
import { benchEnv, fmt, percentile, writeSection } from './report';

const OWNER = 'bench';
const TOKEN = 'bench-token-0123456789abcdef';
const auth = { Authorization: `Bearer ${TOKEN}` };

const HANDLERS: Record<string, { deps: string[]; body: string }> = {
  requests: {
    deps: ['requests>=2.31,<3'],
    body: 'import requests\n\n\ndef handler(payload):\n    r = requests.Request("GET", "http://example.invalid/x", params=payload).prepare()\n    return {"url": r.url}\n',
  },
  pydantic: {
    deps: ['pydantic>=2,<3'],
    body: 'import pydantic\n\n\nclass Point(pydantic.BaseModel):\n    x: int\n    y: int = 0\n\n\ndef handler(payload):\n    return Point(x=payload.get("x", 1)).model_dump()\n',
  },
  numpy: {
    deps: ['numpy>=1.26,<3'],
    body: 'import numpy as np\n\n\ndef handler(payload):\n    a = np.arange(payload.get("n", 10))\n    return {"sum": int(a.sum())}\n',
  },
};
const STDLIB = 'import json\n\n\ndef handler(payload):\n    return {"n": len(json.dumps(payload))}\n';

const source = (name: string, variant: string): string => {
  const h = HANDLERS[name];
  return `# /// script\n# dependencies = ${JSON.stringify(h.deps)}\n# ///\n# ${variant}\n${h.body}`;
};

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const v = await f();
  return [v, performance.now() - t];
}

async function validate(p: Pipeline, name: string, src: string): Promise<[ValidationStatus, number]> {
  return timed(async () => {
    const up = await request(p.api.app)
      .post('/tasks/upload_file')
      .query({ file_name: name })
      .set(auth)
      .attach('file', Buffer.from(src), `${name}.py`);
    if (up.status !== 202) throw new Error(`upload ${name}: ${up.status} ${JSON.stringify(up.body)}`);
    for (;;) {
      const r = await request(p.api.app)
        .get(`/tasks/validation_status/${up.body.validation_id}`)
        .query({ wait: 30, until: 'final' })
        .set(auth);
      if (r.body.status === 'VALIDATED' || r.body.status === 'REJECTED') return r.body as ValidationStatus;
    }
  });
}

async function task(p: Pipeline, title: string): Promise<[Record<string, unknown>, number]> {
  return timed(async () => {
    const c = await request(p.api.app).post('/tasks/').set(auth).send({ title, payload: {}, priority: 'high' });
    if (c.status !== 201) throw new Error(`task ${title}: ${c.status} ${JSON.stringify(c.body)}`);
    for (;;) {
      const r = await request(p.api.app).get(`/tasks/${c.body.task_id}`).query({ wait: 30, until: 'final' }).set(auth);
      if (['COMPLETED', 'FAILED', 'CANCELLED'].includes(r.body.status)) return r.body as Record<string, unknown>;
    }
  });
}

const verdict = (s: ValidationStatus): string =>
  s.status === 'VALIDATED'
    ? 'VALIDATED'
    : `REJECTED (${s.findings
        .filter((f) => f.severity === 'error')
        .map((f) => f.code)
        .join(', ')})`;

async function main(): Promise<void> {
  const taskRuns = arg('--tasks', 30);
  const keyedRuns = arg('--keyed', 200);
  const reps = arg('--reps', 3);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-bench-deps-'));
  const temporal = await startTemporal();
  const env = {
    ...benchEnv(),
    QUOTA_HIGH_TASKS_IN_FLIGHT: '100000',
    DATA_DIR: path.join(root, 'data'),
    TASKS_DIR: path.join(root, 'tasks'),
    TEMPORAL_ADDRESS: temporal.address,
    TASKFLOW_API_KEYS: `${OWNER}:${TOKEN}`,
    DEPENDENCY_UV_PATH: UV_PATH,
    LOG_LEVEL: 'warn',
    ...(process.env.PACKAGE_INDEX_URL ? { PACKAGE_INDEX_URL: process.env.PACKAGE_INDEX_URL } : {}),
    ...(process.env.DEPENDENCY_NATIVE_TLS ? { DEPENDENCY_NATIVE_TLS: process.env.DEPENDENCY_NATIVE_TLS } : {}),
  };
  const config: Config = loadConfig(env);
  const cache = config.dependencies.cacheDir;
  const wipe = () => fs.existsSync(cache) && removeTree(cache);

  // 1. The dependency step alone.
  const stepRows: string[] = [];
  for (const name of Object.keys(HANDLERS)) {
    wipe();
    const [lock, resolveCold] = await timed(() => resolveLock(config.dependencies, HANDLERS[name].deps));
    const [layer, unpackCold] = await timed(() => new LayerCache(config.dependencies).ensure(lock.text));
    const [, resolveWarm] = await timed(() => resolveLock(config.dependencies, HANDLERS[name].deps));
    const [, found] = await timed(() => new LayerCache(config.dependencies).ensure(lock.text));
    stepRows.push(
      `| ${name} | ${lock.pins.length} | ${(layer.unpackedBytes / 1048576).toFixed(1)} | ${fmt(resolveCold)} | ${fmt(unpackCold)} | ${fmt(resolveWarm)} | ${fmt(found)} |`,
    );
  }

  // 2. and 3. The whole pipeline.
  const pipeline = await startPipeline(config, temporal);
  const valRows: string[] = [];
  const taskRows: string[] = [];
  const keyedRows: string[] = [];
  const coldRows: string[] = [];
  const statuses = new Map<string, ValidationStatus>();
  const validated = new Set<string>();
  try {
    await validate(pipeline, 'warm_up', STDLIB); // workflow code, pools and caches warm: not reported
    // Each row: the median of `reps` uploads (a new variant of the file each time), min–max beside it.
    const row = async (label: string, name: string, variant: (i: number) => string, before?: () => void): Promise<ValidationStatus> => {
      const total: number[] = [];
      const step: number[] = [];
      let s: ValidationStatus | undefined;
      for (let i = 0; i < reps; i++) {
        before?.();
        const [st, ms] = await validate(pipeline, name, variant(i));
        s = st;
        total.push(ms);
        if (st.metrics.dependencies_ms !== undefined) step.push(st.metrics.dependencies_ms);
      }
      const range = (v: number[]) => `${fmt(percentile(v, 50))} (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})`;
      valRows.push(`| ${label} | ${range(total)} | ${step.length ? range(step) : '—'} | ${verdict(s!)} |`);
      return s!;
    };
    await row('standard library only', 'stdlib_only', (i) => `${STDLIB}# ${i}\n`);
    for (const name of Object.keys(HANDLERS)) {
      await row(`${name}: new lock, empty caches`, name, (i) => source(name, `cold ${i}`), wipe);
      const warm = await row(`${name}: the lock's layer cached`, name, (i) => source(name, `cached ${i}`));
      statuses.set(name, warm);
      if (warm.status === 'VALIDATED') validated.add(name);
    }
    // Tasks over HTTP, the handlers interleaved round by round (drift on a shared machine hits all alike).
    const titles = ['stdlib_only', ...Object.keys(HANDLERS).filter((n) => validated.has(n))];
    const lat = new Map<string, number[]>(titles.map((t) => [t, []]));
    const last = new Map<string, Record<string, unknown>>();
    for (let i = 0; i < 5 + taskRuns; i++) {
      for (const t of titles) {
        const [state, ms] = await task(pipeline, t);
        last.set(t, state);
        if (i >= 5) lat.get(t)!.push(ms);
      }
    }
    const baseP50 = percentile(lat.get('stdlib_only')!, 50);
    for (const t of titles) {
      const st = last.get(t)!;
      const ok = st.status === 'COMPLETED' ? 'COMPLETED' : `${String(st.status)}: ${JSON.stringify(st.error ?? '').slice(0, 120)}`;
      const p50 = percentile(lat.get(t)!, 50);
      taskRows.push(
        `| ${t === 'stdlib_only' ? 'no dependencies (standard library)' : `${t} layer`} | ${fmt(p50)} | ${fmt(percentile(lat.get(t)!, 99))} | ${(p50 / baseP50).toFixed(2)}× | ${ok} |`,
      );
    }
    for (const n of Object.keys(HANDLERS))
      if (!validated.has(n)) taskRows.push(`| ${n} layer | — | — | — | not run: its upload was REJECTED |`);

    // The sandbox alone: warm keyed calls of one trivial handler with a layer mounted and without, interleaved;
    // then each real handler in a fresh container (start, mount, import, one call).
    const layerOf = (name: string) => {
      const st = statuses.get(name);
      const l = st?.dependencies && new LayerCache(config.dependencies).find(st.dependencies.lock_sha256);
      return l ? { id: l.id, hostDir: l.hostDir } : undefined;
    };
    const trivial = 'def handler(payload):\n    return 1\n';
    const keyed = { with: [] as number[], without: [] as number[] };
    const mounted = layerOf('numpy') ?? layerOf('pydantic') ?? layerOf('requests');
    if (mounted) {
      for (let i = 0; i < 20 + keyedRuns; i++) {
        for (const side of ['without', 'with'] as const) {
          const req = { source: trivial, fileName: 'trivial.py', payloads: [{}], ...(side === 'with' ? { layer: mounted } : {}) };
          const [, ms] = await timed(
            () => pipeline.sandbox.runKeyed({ owner: OWNER, sha256: sha256(trivial) }, req), // one container per layer (none is one)
          );
          if (i >= 20) keyed[side].push(ms);
        }
      }
      keyedRows.push(`| trivial handler, no layer | ${fmt(percentile(keyed.without, 50))} | ${fmt(percentile(keyed.without, 99))} |`);
      keyedRows.push(
        `| trivial handler, ${mounted.id.slice(0, 12)} layer mounted | ${fmt(percentile(keyed.with, 50))} | ${fmt(percentile(keyed.with, 99))} |`,
      );
    }
    for (const name of ['stdlib_only', ...Object.keys(HANDLERS)]) {
      const layer = name === 'stdlib_only' ? undefined : layerOf(name);
      if (name !== 'stdlib_only' && !layer) continue;
      const src = name === 'stdlib_only' ? STDLIB : source(name, 'cold');
      const runs: number[] = [];
      let status = '';
      for (let i = 0; i < 3; i++) {
        const [o, ms] = await timed(() =>
          pipeline.sandbox.runCold({ source: src, fileName: `${name}.py`, payloads: [{}], ...(layer ? { layer } : {}) }),
        );
        status = o.status;
        runs.push(ms);
      }
      coldRows.push(`| ${name} | ${fmt(percentile(runs, 50))} | ${status} |`);
    }
  } finally {
    await pipeline.stop();
    await temporal.stop();
    removeTree(root);
  }

  const body = `## Dependencies: PEP 723 handlers from the real index (requests, pydantic, numpy)

The dependency step alone (src/dependencies, uv ${'`'}--only-binary :all:${'`'}, hashes required; ms):

| handler | packages | unpacked MiB | resolve, empty cache | unpack, empty cache (download + unpack) | resolve, warm cache | layer on host |
|---|---|---|---|---|---|---|
${stepRows.join('\n')}

Upload → VALIDATED through the pipeline (API, validation worker and sandboxes in one process; median of ${reps} uploads, min–max; ms):

| file | upload → final | dependency step | verdict |
|---|---|---|---|
${valRows.join('\n')}

Task create → COMPLETED over HTTP (long poll to the end, warm keyed containers; the handlers interleaved, ${taskRuns} rounds after 5 warm-up; ms):

| handler | p50 | p99 | p50 / no dependencies | last task |
|---|---|---|---|---|
${taskRows.join('\n')}

The sandbox alone, warm keyed calls of one trivial handler with a layer mounted and without (interleaved, ${keyedRuns} each after 20 warm-up; ms):

| run | p50 | p99 |
|---|---|---|
${keyedRows.join('\n')}

A fresh container per run (\`runCold\`: start, mount, import the packages, one call, remove; median of 3; ms):

| handler | start → result | status |
|---|---|---|
${coldRows.join('\n')}`;
  console.log(body);
  if (!process.argv.includes('--no-write')) writeSection('dependencies', 'bash scripts/bench.sh dependencies', body);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
