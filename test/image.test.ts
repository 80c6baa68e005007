/**
 * The container image, tested without a base image (none can be pulled here, and its `npm ci` steps
 * need the network): each stage of the Dockerfile is carried out into an empty directory standing for
 * its WORKDIR — its COPY instructions (`--from=build` taken from the build stage's directory), this
 * checkout's node_modules standing for its `npm ci` — the build stage's `npm run build` is run there,
 * and the final stage's CMD runs from its directory with its ENV (only the addresses are this suite's:
 * loopback, a free port, the suite's Temporal dev server and PostgreSQL database). So the dist/ that
 * runs is the one the build stage made from what it copied, and the process is refused TypeScript and
 * ts-node (test/helpers/no-typescript.js), which the image's `npm ci --omit=dev` does not install. A
 * file the build or the entry point needs that the Dockerfile does not copy fails it. The compose
 * file's TaskFlow services are checked for what every replica needs.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { parse as parseYaml } from 'yaml';
import { freePort, startApp, type Child } from './helpers/processes';
import { startTemporal, type StartedTemporal } from './helpers/temporal';
import { ALICE, suiteEnv } from './helpers/validation';

const ROOT = path.resolve(__dirname, '..');

interface Stage {
  name: string;
  workdir: string;
  copies: { sources: string[]; dest: string; from?: string }[];
  runs: string[];
  env: Record<string, string>;
  cmd: string[];
}

/** The few Dockerfile instructions TaskFlow's uses (FROM, WORKDIR, COPY, RUN, ENV, CMD), continuation lines joined. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const line of lines) {
    const [op, ...rest] = line.split(/\s+/);
    if (op === 'FROM') {
      const as = rest.findIndex((a) => a.toUpperCase() === 'AS');
      stages.push({ name: as >= 0 ? rest[as + 1] : String(stages.length), workdir: '/', copies: [], runs: [], env: {}, cmd: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`instruction before FROM: ${line}`);
    if (op === 'WORKDIR') stage.workdir = rest[0];
    if (op === 'RUN') stage.runs.push(rest.join(' '));
    if (op === 'COPY') {
      const flags = rest.filter((a) => a.startsWith('--'));
      const args = rest.filter((a) => !a.startsWith('--'));
      if (flags.some((f) => !f.startsWith('--from='))) throw new Error(`COPY flags other than --from are not modelled here: ${line}`);
      const from = flags[0]?.slice('--from='.length);
      stage.copies.push({ sources: args.slice(0, -1), dest: args.at(-1)!, ...(from ? { from } : {}) });
    }
    if (op === 'ENV') for (const kv of rest) stage.env[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
    if (op === 'CMD') stage.cmd = JSON.parse(line.slice(3)) as string[];
  }
  return stages;
}

/**
 * A stage's WORKDIR as a directory here: its COPY instructions carried out (from this checkout, or
 * from an earlier stage's directory), node_modules standing for `npm ci`.
 */
function assemble(stage: Stage, built: Map<string, { dir: string; stage: Stage }>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `taskflow-image-${stage.name}-`));
  const inDir = (s: Stage, d: string, p: string) => path.join(d, path.relative(s.workdir, path.resolve(s.workdir, p)));
  for (const { sources, dest, from } of stage.copies) {
    const target = inDir(stage, dir, dest);
    const origin = from ? built.get(from) : undefined;
    if (from && !origin) throw new Error(`COPY --from=${from}: no such earlier stage`);
    for (const src of sources) {
      const to = sources.length > 1 || dest.endsWith('/') ? path.join(target, path.basename(src)) : target;
      fs.cpSync(origin ? inDir(origin.stage, origin.dir, src) : path.join(ROOT, src), to, { recursive: true });
    }
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}

const stages = parseDockerfile(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
const [build, image] = stages;

test('the build stage copies what the build needs, the image only what runs, and runs the compiled entry point', () => {
  expect(stages.map((s) => s.name)).toEqual(['build', '1']);
  const built = build.copies.flatMap((c) => c.sources);
  for (const folder of ['app', 'domain', 'src', 'sandbox', 'workflows', 'activities']) expect(built).toContain(folder);
  expect(build.runs).toEqual(['npm ci --no-audit --no-fund --loglevel=error', 'npm run build']);
  const copied = image.copies.flatMap((c) => c.sources);
  expect(image.copies).toContainEqual({ sources: ['/app/dist'], dest: './dist', from: 'build' });
  for (const never of ['test', 'bench', '.data', 'worker', 'node_modules', 'dist']) expect(built).not.toContain(never);
  // The image runs dist/ only: no sources, no compiler settings.
  for (const never of ['test', 'bench', '.data', 'worker', 'node_modules', 'dist', 'app', 'src', 'tsconfig.json']) {
    expect(copied).not.toContain(never);
  }
  expect(image.runs).toContain('npm ci --omit=dev --no-audit --no-fund --loglevel=error');
  expect(image.cmd).toEqual(['node', 'dist/app/main.js']);
});

test('every TaskFlow service of the compose file has the database, Temporal and one role; together all three roles', () => {
  const compose = parseYaml(fs.readFileSync(path.join(ROOT, 'docker-compose.temporal.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, { build?: unknown; environment?: Record<string, string> }>;
  };
  const taskflow = Object.entries(compose.services).filter(([, s]) => s.build);
  expect(taskflow.map(([name]) => name).sort()).toEqual(['api', 'task-worker', 'validation-worker']);
  for (const [, s] of taskflow) {
    expect(s.environment?.DATABASE_URL).toMatch(/^postgresql:\/\/taskflow:.*@postgresql:5432\/taskflow$/);
    expect(s.environment?.TEMPORAL_ADDRESS).toBe('temporal:7233');
  }
  expect(taskflow.map(([, s]) => s.environment?.TASKFLOW_ROLES).sort()).toEqual(['api', 'task-worker', 'validation-worker']);
});

describe('the image, run', () => {
  let temporal: StartedTemporal;
  let app: Child | undefined;
  let base = '';
  const dirs: string[] = [];

  beforeAll(async () => {
    temporal = await startTemporal();
    // The build stage: its copies, then its `npm run build` (its `npm ci` is this checkout's node_modules).
    const buildDir = assemble(build, new Map());
    dirs.push(buildDir);
    const b = spawnSync('npm', ['run', 'build', '--silent'], { cwd: buildDir, encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`npm run build in the build stage failed (${b.status}):\n${b.stdout}${b.stderr}`);
    const dir = assemble(image, new Map([[build.name, { dir: buildDir, stage: build }]]));
    dirs.push(dir);
    const port = await freePort();
    // The image's ENV with its paths moved into the directory standing for it, then this suite's addresses.
    const inImage = Object.fromEntries(Object.entries(image.env).map(([k, v]) => [k, v.replace(image.workdir, dir)]));
    const env: Record<string, string> = { ...suiteEnv(temporal.address), ...inImage, HOST: '127.0.0.1', PORT: String(port) };
    // The engine this machine's tests use (the image's default is the host socket mounted into the container).
    env.DOCKER_SOCKET = process.env.DOCKER_SOCKET ?? '/var/run/docker.sock';
    // The image's `npm ci --omit=dev` has no TypeScript: loading it (or ts-node) here fails the start.
    env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --require ${path.join(__dirname, 'helpers/no-typescript.js')}`.trim();
    const [node, ...args] = image.cmd;
    expect(node).toBe('node');
    app = await startApp({ cwd: dir, command: [process.execPath, ...args], env, ready: '"msg":"validation worker polling"' });
    base = `http://127.0.0.1:${port}`;
  }, 240000);

  afterAll(async () => {
    if (app) expect(await app.stop()).toBe(0); // a graceful stop: workers drained, sandboxes removed
    await temporal?.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  test('it serves: ready, an upload validated, a task run', async () => {
    const deadline = Date.now() + 90000;
    while ((await request(base).get('/readyz')).status !== 200) {
      if (Date.now() > deadline) throw new Error('never ready');
      await new Promise((r) => setTimeout(r, 250));
    }
    const auth = { Authorization: `Bearer ${ALICE}` };
    const up = await request(base)
      .post('/tasks/upload_file?file_name=imaged')
      .set(auth)
      .attach('file', Buffer.from('def handler(payload):\n    return {"doubled": payload.get("n", 0) * 2}\n'), 'imaged.py')
      .expect(202);
    const s = await request(base).get(`/tasks/validation_status/${up.body.validation_id}?wait=60&until=final`).set(auth);
    expect(s.body).toMatchObject({ status: 'VALIDATED', promoted: true });
    const t = await request(base)
      .post('/tasks/')
      .set(auth)
      .send({ title: 'imaged', payload: { n: 21 } })
      .expect(201);
    const done = await request(base).get(`/tasks/${t.body.task_id}?wait=60&until=final`).set(auth);
    expect(done.body).toMatchObject({ status: 'COMPLETED', result: { doubled: 42 } });
  }, 180000);
});
