/**
 * The chaos run shared by test/chaos.test.ts (small) and bench/chaos.ts (larger): TaskFlow as five
 * real processes — a Temporal dev server on a SQLite file, a PostgreSQL server of its own, the API, a
 * validation worker and a task worker (app/main.ts, one role each) — with uploads and tasks in flight
 * while each of them is SIGKILLed and restarted. Afterwards it counts what matters: uploads and tasks lost (accepted but
 * never final), wrong (final in the wrong state or with a wrong result), duplicated (more tasks than
 * were asked for), records left unfinished, and sandbox containers left behind by the processes.
 *
 * Client rules (what a careful client does): a request that never reached the API (connection
 * refused) is sent again; a 503 or 412 on task creation created nothing and is sent again later; an
 * upload answered 503 carries its kept validation_id (Temporal down), or none (the database down: nothing
 * was kept, it is sent again later); any other 5xx is a problem; a request cut off mid-way has an unknown
 * outcome and is NOT repeated (repeating it could duplicate), but whatever it created is checked too.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { LABEL, LABEL_INSTANCE } from '../../sandbox/spec';
import { loadConfig, type Role } from '../../src/config';
import { silentLogger } from '../../src/logger';
import { openStorage } from '../../src/storage';
import { startPostgresServer } from './database';
import { freePort, startDevServer, startRole, type Child } from './processes';
import { ALICE, promotedSource, suiteEnv } from './validation';

export interface ChaosOptions {
  goodFiles: number;
  badFiles: number;
  tasks: number;
  /** Progress lines (what was killed when). */
  note?: (line: string) => void;
}

export interface ChaosReport {
  uploads: {
    accepted: number;
    keptDuringOutage: number;
    resentAfterRefusal: number;
    unknownOutcome: number;
    validated: number;
    rejected: number;
    lost: number;
    wrong: number;
    unfinishedRecords: number;
  };
  tasks: {
    created: number;
    resentAfterRefusal: number;
    unknownOutcome: number;
    completed: number;
    retriedRuns: number;
    lost: number;
    wrong: number;
    duplicated: number;
  };
  /** Per kill: uploads and tasks known to the client and not yet final right before it. */
  kills: { target: string; inFlight: number; downMs: number }[];
  leftoverContainers: number;
  /** One line per item lost, wrong or duplicated (empty when all is well). */
  problems: string[];
  /** Time from the first upload until every upload and task was final. */
  workMs: number;
}

const good = (i: number) =>
  `import asyncio\n\n\nasync def handler(payload):\n    await asyncio.sleep(0.3)\n    return {"file": ${i}, "double": payload.get("n", 0) * 2}\n`;
const bad = (j: number) =>
  j % 2 ? `def handler(payload)\n    return ${j}\n` : `def handler(payload):\n    raise ValueError("bad file ${j}")\n`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FINAL_TASK = ['COMPLETED', 'FAILED', 'CANCELLED'];

type Sent<T> = { kind: 'answered'; status: number; body: T; retryAfter: string | null } | { kind: 'unknown' };

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const note = opts.note ?? (() => undefined);
  const [temporalPort, apiPort] = [await freePort(), await freePort()];
  const postgres = await startPostgresServer(await freePort());
  const env = suiteEnv(`127.0.0.1:${temporalPort}`, {
    DATABASE_URL: postgres.url,
    HOST: '127.0.0.1',
    PORT: String(apiPort),
    TASK_WORKER_SLOTS: '2',
    VALIDATION_WORKER_CONCURRENCY: '2',
    SANDBOX_POOL_SIZE: '1',
    TASK_PAYLOAD_TIMEOUT_MS: '10000',
    SANDBOX_PAYLOAD_TIMEOUT_MS: '5000',
    QUOTA_UPLOADS_PER_MINUTE: '100000',
    QUOTA_VALIDATIONS_IN_FLIGHT: '100000',
    QUOTA_TASKS_PER_MINUTE: '100000',
    QUOTA_TASKS_IN_FLIGHT: '100000',
  });
  const dbFile = path.join(path.dirname(env.DATA_DIR), 'temporal.db');
  const base = `http://127.0.0.1:${apiPort}`;
  const auth = { Authorization: `Bearer ${ALICE}` };
  const procs: Partial<Record<Role | 'temporal', Child>> = {};
  type Target = Role | 'temporal' | 'postgres';
  const problems: string[] = [];
  const rolePids = new Set<number>();
  const kills: ChaosReport['kills'] = [];

  const start = async (target: Target) => {
    if (target === 'postgres') return postgres.restart();
    const p = target === 'temporal' ? await startDevServer(temporalPort, dbFile) : await startRole(target, env);
    if (target !== 'temporal') rolePids.add(p.pid);
    procs[target] = p;
  };
  const killAndRestart = async (target: Target, whileDown?: () => Promise<void>, inFlight?: number) => {
    inFlight ??= await unfinishedNow();
    const t = performance.now();
    await (target === 'postgres' ? postgres.kill() : procs[target]!.kill());
    note(`SIGKILL ${target}`);
    await whileDown?.();
    await start(target);
    kills.push({ target, inFlight, downMs: Math.round(performance.now() - t) });
    note(`${target} back after ${Math.round(performance.now() - t)} ms (${inFlight} in flight when killed)`);
  };

  /** One HTTP request; a refused connection (API down) is sent again, a cut-off one is 'unknown'. */
  async function send<T>(method: string, url: string, body?: FormData | string): Promise<Sent<T>> {
    for (;;) {
      try {
        const headers = typeof body === 'string' ? { ...auth, 'Content-Type': 'application/json' } : auth;
        const res = await fetch(base + url, { method, headers, body, signal: AbortSignal.timeout(30000) });
        if (res.status >= 500 && res.status !== 503) problems.push(`${method} ${url.split('?')[0]}: HTTP ${res.status}`);
        // Every 503 of the API says when to come back (/readyz answers probes, which need no such hint).
        if (res.status === 503 && url.startsWith('/tasks') && !res.headers.get('retry-after'))
          problems.push(`${method} ${url.split('?')[0]}: 503 without Retry-After`);
        return {
          kind: 'answered',
          status: res.status,
          body: (await res.json().catch(() => ({}))) as T,
          retryAfter: res.headers.get('retry-after'),
        };
      } catch (err) {
        const code = (err as { cause?: { code?: string } }).cause?.code;
        if (code === 'ECONNREFUSED') {
          await sleep(250);
          continue;
        }
        return { kind: 'unknown' };
      }
    }
  }

  // What was asked for, and what the API said.
  const kindOf = new Map<string, 'good' | 'bad'>(); // file name → kind
  const sources = new Map<string, string>();
  const uploads = new Map<string, string>(); // validation id → file name
  let keptDuringOutage = 0;
  let uploadUnknown = 0;
  let uploadsResent = 0;
  /** Sends the upload; false when it was refused with nothing kept (send it again later). */
  async function upload(name: string): Promise<boolean> {
    const form = new FormData();
    form.append('file', new Blob([sources.get(name)!], { type: 'text/x-python' }), `${name}.py`);
    const r = await send<{ validation_id?: string; error?: { validation_id?: string } }>(
      'POST',
      `/tasks/upload_file?file_name=${name}`,
      form,
    );
    if (r.kind === 'unknown') uploadUnknown++;
    else if (r.status === 202) uploads.set(r.body.validation_id!, name);
    else if (r.status === 503 && r.body.error?.validation_id) {
      keptDuringOutage++;
      uploads.set(r.body.error.validation_id, name);
    } else if (r.status === 503) {
      uploadsResent++;
      return false;
    } else throw new Error(`upload ${name}: unexpected HTTP ${r.status} ${JSON.stringify(r.body)}`);
    return true;
  }
  const file = (kind: 'good' | 'bad', i: number) => {
    const name = `${kind}_${i}`;
    kindOf.set(name, kind);
    sources.set(name, kind === 'good' ? good(i) : bad(i));
    return name;
  };

  const tasks = new Map<string, number>(); // task id → n
  const toCreate: { n: number; name: string }[] = [];
  let resentAfterRefusal = 0;
  let taskUnknown = 0;
  const unknownTaskNs = new Set<number>();
  async function createTask(t: { n: number; name: string }): Promise<boolean> {
    const r = await send<{ task_id?: string }>('POST', '/tasks/', JSON.stringify({ title: t.name, payload: { n: t.n } }));
    if (r.kind === 'unknown') {
      taskUnknown++;
      unknownTaskNs.add(t.n);
      return true;
    }
    if (r.status === 201) {
      tasks.set(r.body.task_id!, t.n);
      return true;
    }
    if (r.status === 503 || r.status === 412) {
      resentAfterRefusal++;
      return false; // nothing was created: send again later
    }
    throw new Error(`task ${t.n}: unexpected HTTP ${r.status} ${JSON.stringify(r.body)}`);
  }
  async function createAll(list: { n: number; name: string }[]): Promise<void> {
    for (const t of list) if (!(await createTask(t))) toCreate.push(t);
  }

  const statusOf = async (id: string) => {
    const r = await send<{ status?: string }>('GET', `/tasks/validation_status/${id}`);
    return r.kind === 'answered' && r.status === 200 ? r.body.status : undefined;
  };
  const taskOf = async (id: string) => {
    const r = await send<{ status?: string; result?: unknown; attempts?: number }>('GET', `/tasks/${id}`);
    return r.kind === 'answered' && r.status === 200 ? r.body : undefined;
  };
  /** Known uploads and tasks not final yet (asked through the API, which must be up). */
  const unfinishedNow = async () => {
    let n = 0;
    for (const id of uploads.keys()) if (!['VALIDATED', 'REJECTED'].includes((await statusOf(id)) ?? '')) n++;
    for (const id of tasks.keys()) if (!FINAL_TASK.includes((await taskOf(id))?.status ?? '')) n++;
    return n;
  };
  const until = async (what: string, cond: () => Promise<boolean>, timeoutMs = 120000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error(`chaos: gave up waiting for ${what}`);
      await sleep(200);
    }
  };

  try {
    await start('temporal');
    await Promise.all([start('api'), start('validation-worker'), start('task-worker')]);
    note('all five processes up');
    const t0 = performance.now();

    const goods = Array.from({ length: opts.goodFiles }, (_, i) => file('good', i));
    const bads = Array.from({ length: opts.badFiles }, (_, j) => file('bad', j));
    const firstGoods = goods.slice(0, Math.ceil(goods.length / 2));
    const batch1 = [...firstGoods, ...bads.slice(0, Math.ceil(bads.length / 2))];
    const batch2 = [...goods.slice(firstGoods.length), ...bads.slice(Math.ceil(bads.length / 2))];

    // 1. The validation worker dies while sandbox runs are under way.
    for (const name of batch1) await upload(name);
    await until('a sandbox run', async () => {
      for (const id of uploads.keys()) if ((await statusOf(id)) === 'SANDBOX_RUN') return true;
      return false;
    });
    await killAndRestart('validation-worker');

    // 2. Tasks on the first validated files; the task worker dies mid-run.
    const firstIds = [...uploads].filter(([, n]) => firstGoods.includes(n)).map(([id]) => id);
    await until(
      'the first files validated',
      async () => (await Promise.all(firstIds.map(statusOf))).every((s) => s === 'VALIDATED'),
      180000,
    );
    const wanted = Array.from({ length: opts.tasks }, (_, n) => ({ n, name: firstGoods[n % firstGoods.length] }));
    const half = Math.ceil(wanted.length / 2);
    await createAll(wanted.slice(0, half));
    await until('a running task', async () => {
      for (const id of tasks.keys()) if ((await taskOf(id))?.status === 'RUNNING') return true;
      return false;
    });
    await killAndRestart('task-worker');

    // 3. The Temporal server dies with the second batch of uploads (just sent) in flight. Meanwhile: an
    //    upload (503, kept for later) and a task (503, nothing created, sent again later).
    for (const name of batch2) await upload(name);
    await killAndRestart('temporal', async () => {
      const extra = file('good', opts.goodFiles);
      await upload(extra);
      const t = { n: wanted.length, name: firstGoods[0] };
      wanted.push(t);
      if (!(await createTask(t))) toCreate.push(t);
    });

    // 4. PostgreSQL dies with uploads and tasks in flight (a new batch of each, just sent). Meanwhile an
    //    upload and a task are refused with 503 (nothing kept or created) and sent again once it is back.
    const third = [file('good', opts.goodFiles + 2), file('bad', opts.badFiles)];
    for (const name of third) await upload(name);
    const quarter = Math.ceil((wanted.length - half) / 2);
    await createAll(wanted.slice(half, half + quarter));
    const resend: string[] = [];
    await killAndRestart('postgres', async () => {
      const ready = await send<{ checks?: { database?: { ok: boolean } } }>('GET', '/readyz');
      if (ready.kind !== 'answered' || ready.status !== 503 || ready.body.checks?.database?.ok !== false)
        problems.push(`/readyz with PostgreSQL down: ${JSON.stringify(ready)}`);
      const extra = file('good', opts.goodFiles + 3);
      if (!(await upload(extra))) resend.push(extra);
      const t = { n: wanted.length, name: firstGoods[0] };
      wanted.push(t);
      if (!(await createTask(t))) toCreate.push(t);
    });
    for (const name of resend) while (!(await upload(name))) await sleep(500);

    // 5. The API dies with requests in flight; its restart also starts the upload kept in step 3.
    const before = await unfinishedNow();
    const burst = Promise.all([createAll(wanted.slice(half + quarter, wanted.length - 2)), upload(file('good', opts.goodFiles + 1))]);
    await sleep(150);
    await killAndRestart('api', undefined, before + 1);
    await burst;
    while (toCreate.length) await createAll(toCreate.splice(0));
    note(`all requests sent: ${uploads.size} uploads known, ${tasks.size} tasks created`);

    // Everything reaches a final state.
    const finalUpload = new Map<string, string | undefined>();
    await until(
      'every upload final',
      async () => {
        for (const id of uploads.keys())
          if (!finalUpload.get(id)) {
            const s = await statusOf(id);
            if (s === 'VALIDATED' || s === 'REJECTED') finalUpload.set(id, s);
          }
        return [...uploads.keys()].every((id) => finalUpload.get(id));
      },
      240000,
    ).catch(() => undefined);
    const finalTask = new Map<string, { status?: string; result?: unknown; attempts?: number }>();
    await until(
      'every task final',
      async () => {
        for (const id of tasks.keys())
          if (!finalTask.has(id)) {
            const t = await taskOf(id);
            if (t && FINAL_TASK.includes(t.status ?? '')) finalTask.set(id, t);
          }
        return finalTask.size === tasks.size;
      },
      240000,
    ).catch(() => undefined);
    const workMs = Math.round(performance.now() - t0);

    // Uploads: the right verdict for each; every record in the database (unknown outcomes included) final and right.
    const verdict = (name: string) => (kindOf.get(name) === 'good' ? 'VALIDATED' : 'REJECTED');
    let lost = 0;
    let wrong = 0;
    for (const [id, name] of uploads) {
      const s = finalUpload.get(id);
      if (!s) {
        lost++;
        problems.push(`upload ${name} (${id}) never final`);
      } else if (s !== verdict(name)) {
        wrong++;
        problems.push(`upload ${name} (${id}) ${s}, expected ${verdict(name)}`);
      }
    }
    let unfinishedRecords = 0;
    const storage = await openStorage(loadConfig(env), silentLogger);
    const recorded = new Set<string>();
    const { rows } = await storage.db.pool.query<{ validation_id: string }>("SELECT validation_id FROM validations WHERE owner = 'alice'");
    for (const { validation_id } of rows) {
      const rec = (await storage.records.get(validation_id))!;
      recorded.add(rec.file_name);
      if (!rec.final) {
        unfinishedRecords++;
        problems.push(`record ${rec.validation_id} (${rec.file_name}) not final`);
      } else if (!uploads.has(rec.validation_id) && rec.final.status !== verdict(rec.file_name)) {
        wrong++;
        problems.push(`unknown-outcome upload ${rec.file_name} ${rec.final.status}`);
      }
    }
    // A name that got a record must end promoted (good) or not at all (bad). (An upload cut off before
    // its record was written left nothing, which is right too.)
    for (const [name, kind] of kindOf) {
      const promoted = await promotedSource(storage, 'alice', name);
      if (kind === 'bad' && promoted !== undefined) {
        wrong++;
        problems.push(`bad file ${name} promoted`);
      }
      if (kind === 'good' && recorded.has(name) && promoted !== sources.get(name)) {
        wrong++;
        problems.push(`good file ${name} not promoted as uploaded`);
      }
    }

    await storage.close();

    // Tasks: completed with the right result, each asked-for task once.
    let taskLost = 0;
    let taskWrong = 0;
    let retriedRuns = 0;
    for (const [id, n] of tasks) {
      const t = finalTask.get(id);
      if (!t) {
        taskLost++;
        problems.push(`task ${n} (${id}) never final`);
        continue;
      }
      const fileIndex = Number(wanted[n].name.split('_')[1]);
      if (t.status !== 'COMPLETED' || JSON.stringify(t.result) !== JSON.stringify({ file: fileIndex, double: n * 2 })) {
        taskWrong++;
        problems.push(`task ${n} (${id}) ${t.status} ${JSON.stringify(t.result)}`);
      }
      if ((t.attempts ?? 1) > 1) retriedRuns++;
    }
    const listed: string[] = [];
    for (let offset = 0; ; offset += 100) {
      const r = await send<{ tasks: { task_id: string }[]; next_offset?: number }>('GET', `/tasks/?limit=100&offset=${offset}`);
      if (r.kind !== 'answered' || r.status !== 200) throw new Error('listing tasks failed');
      listed.push(...r.body.tasks.map((t) => t.task_id));
      if (r.body.next_offset === undefined) break;
    }
    const extra = listed.filter((id) => !tasks.has(id)).length;
    const duplicated = Math.max(0, extra - unknownTaskNs.size) + (listed.length - new Set(listed).size);
    if (duplicated) problems.push(`${listed.length} tasks listed for ${tasks.size} created and ${unknownTaskNs.size} of unknown outcome`);

    // Graceful stops; then no container of any of our processes may be left.
    for (const role of ['api', 'validation-worker', 'task-worker'] as const) await procs[role]?.stop();
    const docker = new Docker({ socketPath: env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
    const containers = await docker.listContainers({ all: true, filters: { label: [`${LABEL}=true`] } });
    const leftoverContainers = containers.filter((c) => {
      const [host, pid] = (c.Labels[LABEL_INSTANCE] ?? '').split('/');
      return host === os.hostname() && rolePids.has(Number(pid));
    }).length;

    const counts = [...finalUpload.values()];
    return {
      uploads: {
        accepted: uploads.size - keptDuringOutage,
        keptDuringOutage,
        resentAfterRefusal: uploadsResent,
        unknownOutcome: uploadUnknown,
        validated: counts.filter((s) => s === 'VALIDATED').length,
        rejected: counts.filter((s) => s === 'REJECTED').length,
        lost,
        wrong,
        unfinishedRecords,
      },
      tasks: {
        created: tasks.size,
        resentAfterRefusal,
        unknownOutcome: taskUnknown,
        completed: [...finalTask.values()].filter((t) => t.status === 'COMPLETED').length,
        retriedRuns,
        lost: taskLost,
        wrong: taskWrong,
        duplicated,
      },
      kills,
      leftoverContainers,
      problems,
      workMs,
    };
  } finally {
    for (const p of Object.values(procs)) await p?.kill();
    await postgres.stop();
    fs.rmSync(path.dirname(env.DATA_DIR), { recursive: true, force: true });
  }
}
