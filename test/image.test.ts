/**
 * The container image, tested without a base image (none can be pulled here, and its RUN steps need
 * the network): the Dockerfile's COPY instructions are carried out into an empty directory standing
 * for its WORKDIR, this checkout's node_modules stands for its `npm ci`, and its CMD runs from there
 * with its ENV (only the addresses are this suite's: loopback, a free port, the suite's Temporal dev
 * server and PostgreSQL database). A folder the entry point imports or reads at run time that the
 * Dockerfile does not copy fails it. The compose file's TaskFlow services are checked for what every
 * replica needs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { parse as parseYaml } from 'yaml';
import { freePort, startApp, type Child } from './helpers/processes';
import { startTemporal, type StartedTemporal } from './helpers/temporal';
import { ALICE, suiteEnv } from './helpers/validation';

const ROOT = path.resolve(__dirname, '..');

interface Image {
  workdir: string;
  copies: { sources: string[]; dest: string }[];
  env: Record<string, string>;
  cmd: string[];
}

/** The few Dockerfile instructions TaskFlow's uses (WORKDIR, COPY, ENV, CMD), continuation lines joined. */
function parseDockerfile(text: string): Image {
  const image: Image = { workdir: '/', copies: [], env: {}, cmd: [] };
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const line of lines) {
    const [op, ...rest] = line.split(/\s+/);
    if (op === 'WORKDIR') image.workdir = rest[0];
    if (op === 'COPY') {
      if (rest.some((a) => a.startsWith('--'))) throw new Error(`COPY with flags is not modelled here: ${line}`);
      image.copies.push({ sources: rest.slice(0, -1), dest: rest.at(-1)! });
    }
    if (op === 'ENV') for (const kv of rest) image.env[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
    if (op === 'CMD') image.cmd = JSON.parse(line.slice(3)) as string[];
  }
  return image;
}

/** The image's WORKDIR as a directory here: its COPY instructions carried out, node_modules standing for `npm ci`. */
function assemble(image: Image): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'taskflow-image-'));
  for (const { sources, dest } of image.copies) {
    const target = path.join(dir, path.relative(image.workdir, path.resolve(image.workdir, dest)));
    for (const src of sources) {
      const to = sources.length > 1 || dest.endsWith('/') ? path.join(target, path.basename(src)) : target;
      fs.cpSync(path.join(ROOT, src), to, { recursive: true });
    }
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}

const image = parseDockerfile(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));

test('the Dockerfile copies what its entry point needs and nothing that is state', () => {
  const copied = image.copies.flatMap((c) => c.sources);
  for (const folder of ['app', 'domain', 'src', 'sandbox', 'workflows', 'activities', 'bin']) expect(copied).toContain(folder);
  for (const never of ['test', 'bench', '.data', 'worker', 'node_modules']) expect(copied).not.toContain(never);
  expect(image.cmd).toEqual(['node_modules/.bin/ts-node', '--transpile-only', 'app/main.ts']);
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

  beforeAll(async () => {
    temporal = await startTemporal();
    const dir = assemble(image);
    const port = await freePort();
    // The image's ENV with its paths moved into the directory standing for it, then this suite's addresses.
    const inImage = Object.fromEntries(Object.entries(image.env).map(([k, v]) => [k, v.replace(image.workdir, dir)]));
    const env: Record<string, string> = { ...suiteEnv(temporal.address), ...inImage, HOST: '127.0.0.1', PORT: String(port) };
    // The engine this machine's tests use (the image's default is the host socket mounted into the container).
    env.DOCKER_SOCKET = process.env.DOCKER_SOCKET ?? '/var/run/docker.sock';
    app = await startApp({ cwd: dir, command: image.cmd, env, ready: '"msg":"validation worker polling"' });
    base = `http://127.0.0.1:${port}`;
  }, 180000);

  afterAll(async () => {
    if (app) expect(await app.stop()).toBe(0); // a graceful stop: workers drained, sandboxes removed
    await temporal?.stop();
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
