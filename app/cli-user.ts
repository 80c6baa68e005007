/**
 * The user's commands: talk to a TaskFlow server over HTTP (URL and token from --url/--token or
 * TASKFLOW_URL/TASKFLOW_TOKEN). Human output by default, `--json` for scripts (one JSON document
 * on stdout). Progress goes to stderr.
 */
import fs from 'node:fs';
import path from 'node:path';
import { MAX_TASK_PAGE, TASK_PRIORITIES, TASK_STATUSES, type TaskPriority, type TaskState, type TaskStatus } from '../domain/task';
import { fileNameProblem, normalizeFileName, TASK_ID_RE, VALIDATION_ID_RE } from '../domain/names';
import type { ValidationStatus } from '../domain/validation';
import { TaskflowClient } from '../src/client/api-client';
import { clientSettings } from '../src/client/config';
import { COLOR, formatTask, formatTaskTable, formatValidation, PLAIN, type Style } from '../src/client/format';
import { jsonObject, parse, printJson, UsageError } from './cli-args';

const COMMON = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
} as const;

interface Common {
  url?: string;
  token?: string;
  json?: boolean;
}

interface Output {
  client: TaskflowClient;
  json: boolean;
  style: Style;
  /** Progress on a terminal is redrawn on one line. */
  progressInPlace: boolean;
}

function setup(values: Common): Output {
  const tty = Boolean(process.stdout.isTTY);
  return {
    client: new TaskflowClient(clientSettings({ url: values.url, token: values.token })),
    json: Boolean(values.json),
    style: tty && !process.env.NO_COLOR ? COLOR : PLAIN,
    progressInPlace: Boolean(process.stderr.isTTY),
  };
}

const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);

/** PENDING → STATIC_CHECK → SANDBOX_RUN → VALIDATED, as the statuses arrive. */
function progress(o: Output, label: string): { onStatus: (s: string) => void; end: () => void } {
  const seen: string[] = [];
  return {
    onStatus: (s) => {
      if (o.json) return;
      seen.push(s);
      if (o.progressInPlace) process.stderr.write(`\r${label}: ${seen.join(' → ')}`);
      else process.stderr.write(`${label}: ${s}\n`);
    },
    end: () => {
      if (!o.json && o.progressInPlace && seen.length) process.stderr.write('\n');
    },
  };
}

const validationExit = (s: ValidationStatus) => (s.status === 'REJECTED' ? 1 : 0);
const taskExit = (t: TaskState) => (t.status === 'FAILED' || t.status === 'CANCELLED' ? 1 : 0);

function fileName(raw: string, option: string): string {
  const problem = fileNameProblem(raw);
  if (problem) throw new UsageError(`${option}: ${problem}`);
  return normalizeFileName(raw);
}

export async function upload(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...COMMON, name: { type: 'string' }, payload: { type: 'string', multiple: true }, wait: { type: 'boolean' } },
    { min: 1, max: 1, names: 'FILE.py' },
  );
  const file = positionals[0];
  const name = fileName(values.name ?? path.basename(file).replace(/\.py$/, ''), values.name ? '--name' : 'the file name (use --name)');
  const payloads = (values.payload ?? []).map((p) => jsonObject('payload', p));
  const o = setup(values);
  let source: Buffer;
  try {
    source = fs.readFileSync(file);
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const accepted = await o.client.upload(name, source, payloads);
  if (!values.wait) {
    if (o.json) printJson(accepted);
    else
      out(
        `${path.basename(file)}: uploaded as ${accepted.file_name}, validation ${accepted.validation_id} is ${accepted.status}\nfollow it: taskflow status ${accepted.validation_id} --wait`,
      );
    return 0;
  }
  const p = progress(o, path.basename(file));
  const final = await o.client
    .waitForValidation(accepted.validation_id, { onStatus: p.onStatus, knownStatus: accepted.status })
    .finally(p.end);
  if (o.json) printJson(final);
  else out(formatValidation(final, path.basename(file), o.style));
  return validationExit(final);
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...COMMON, payload: { type: 'string' }, priority: { type: 'string' }, wait: { type: 'boolean' } },
    { min: 1, max: 1, names: 'NAME (a validated task file)' },
  );
  const title = fileName(positionals[0], 'NAME');
  if (values.priority !== undefined && !(TASK_PRIORITIES as readonly string[]).includes(values.priority)) {
    throw new UsageError(`--priority must be one of ${TASK_PRIORITIES.join(', ')}`);
  }
  const payload = values.payload === undefined ? {} : jsonObject('payload', values.payload);
  const o = setup(values);
  const created = await o.client.createTask({ title, payload, ...(values.priority ? { priority: values.priority as TaskPriority } : {}) });
  if (!values.wait) {
    if (o.json) printJson(created);
    else
      out(
        `task ${created.task_id} (${created.title}, ${created.priority} priority): ${created.status}\nfollow it: taskflow status ${created.task_id} --wait`,
      );
    return 0;
  }
  const p = progress(o, `task ${created.task_id}`);
  const final = await o.client.waitForTask(created.task_id, { onStatus: p.onStatus, knownStatus: created.status }).finally(p.end);
  if (o.json) printJson(final);
  else out(formatTask(final, o.style));
  return taskExit(final);
}

export async function status(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...COMMON, wait: { type: 'boolean' } }, { min: 1, max: 1, names: 'ID' });
  const id = positionals[0];
  const o = setup(values);
  if (VALIDATION_ID_RE.test(id)) {
    const p = progress(o, `validation ${id}`);
    const s = values.wait
      ? await o.client.waitForValidation(id, { onStatus: p.onStatus }).finally(p.end)
      : await o.client.validationStatus(id);
    if (o.json) printJson(s);
    else out(formatValidation(s, `${s.file_name}.py`, o.style));
    return validationExit(s);
  }
  if (TASK_ID_RE.test(id)) {
    const p = progress(o, `task ${id}`);
    const t = values.wait ? await o.client.waitForTask(id, { onStatus: p.onStatus }).finally(p.end) : await o.client.task(id);
    if (o.json) printJson(t);
    else out(formatTask(t, o.style));
    return taskExit(t);
  }
  throw new UsageError(`${JSON.stringify(id)} is neither a validation id (32 hex digits) nor a task id (a UUID)`);
}

export async function tasks(args: string[]): Promise<number> {
  const { values } = parse(
    args,
    { ...COMMON, status: { type: 'string' }, name: { type: 'string' }, limit: { type: 'string' } },
    { min: 0, max: 0, names: '' },
  );
  if (values.status !== undefined && !(TASK_STATUSES as readonly string[]).includes(values.status.toUpperCase())) {
    throw new UsageError(`--status must be one of ${TASK_STATUSES.join(', ')}`);
  }
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= MAX_TASK_PAGE))
    throw new UsageError(`--limit must be a whole number from 1 to ${MAX_TASK_PAGE}`);
  const o = setup(values);
  const page = await o.client.listTasks({
    ...(values.status ? { status: values.status.toUpperCase() as TaskStatus } : {}),
    ...(values.name ? { title: fileName(values.name, '--name') } : {}),
    ...(limit ? { limit } : {}),
  });
  if (o.json) printJson(page);
  else out(page.tasks.length ? formatTaskTable(page.tasks) : 'no tasks');
  return 0;
}

export async function cancel(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, COMMON, { min: 1, max: 1, names: 'TASK_ID' });
  if (!TASK_ID_RE.test(positionals[0])) throw new UsageError(`${JSON.stringify(positionals[0])} is not a task id (a UUID)`);
  const o = setup(values);
  const t = await o.client.cancelTask(positionals[0]);
  if (o.json) printJson(t);
  else out(`task ${t.task_id}: cancellation requested (status ${t.status})`);
  return 0;
}

export async function remove(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, COMMON, { min: 1, max: 1, names: 'NAME' });
  const name = fileName(positionals[0], 'NAME');
  const o = setup(values);
  const d = await o.client.deleteFile(name);
  if (o.json) printJson(d);
  else out(`deleted ${d.file_name}`);
  return 0;
}
