/**
 * A small HTTP client for TaskFlow's API, as a user's program would use it (the CLI does). Each
 * method is one request; `waitFor*` follow a validation or task to its end using the server's
 * long-poll (`?wait=SECONDS&known_status=STATUS`) and, against a server that answers at once,
 * a plain poll.
 */
import { isFinalTaskStatus, type TaskPriority, type TaskState, type TaskStatus } from '../../domain/task';
import { isFinal, type DeletedFile, type UploadAccepted, type ValidationStatus } from '../../domain/validation';
import type { TaskListPage } from '../tasks/task-service';
import type { ClientSettings } from './config';

export interface CreatedTask {
  task_id: string;
  status: TaskStatus;
  title: string;
  priority: TaskPriority;
}

/** An answer other than 2xx, with the API's error body `{"error": {"code", "message"}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The server could not be reached, or did not answer with JSON. */
export class ConnectionError extends Error {}

/** How long one long-poll request asks the server to hold the answer. */
const LONG_POLL_S = 30;
/** Between two answers that came back at once with nothing new (a server without long-poll). */
const POLL_INTERVAL_MS = 300;

export interface WaitOptions {
  /** Called with every status seen, the first one included. */
  onStatus?: (status: string) => void;
  /** Give up (rejecting with the last status) after this long; default: never. */
  timeoutMs?: number;
  /** A status the caller already has (an upload's PENDING): reported first, and the long poll starts from it. */
  knownStatus?: string;
}

export class TaskflowClient {
  constructor(private readonly settings: ClientSettings) {}

  upload(name: string, source: Buffer, testPayloads?: unknown[]): Promise<UploadAccepted> {
    const form = new FormData();
    form.append('file', new Blob([source], { type: 'text/x-python' }), `${name}.py`);
    if (testPayloads?.length) form.append('test_payloads', JSON.stringify(testPayloads));
    return this.request('POST', `/tasks/upload_file?file_name=${encodeURIComponent(name)}`, form);
  }

  validationStatus(id: string, wait?: { seconds: number; knownStatus: string }): Promise<ValidationStatus> {
    return this.request('GET', `/tasks/validation_status/${encodeURIComponent(id)}${waitQuery(wait)}`);
  }

  createTask(req: {
    title: string;
    payload: Record<string, unknown>;
    priority?: TaskPriority;
    scheduledAt?: string;
  }): Promise<CreatedTask> {
    const body = {
      title: req.title,
      payload: req.payload,
      ...(req.priority ? { priority: req.priority } : {}),
      ...(req.scheduledAt ? { scheduled_at: req.scheduledAt } : {}),
    };
    return this.request('POST', '/tasks', JSON.stringify(body));
  }

  task(id: string, wait?: { seconds: number; knownStatus: string }): Promise<TaskState> {
    return this.request('GET', `/tasks/${encodeURIComponent(id)}${waitQuery(wait)}`);
  }

  listTasks(q: { status?: TaskStatus; title?: string; limit?: number; offset?: number } = {}): Promise<TaskListPage> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    return this.request('GET', `/tasks${qs ? `?${qs}` : ''}`);
  }

  cancelTask(id: string): Promise<TaskState> {
    return this.request('DELETE', `/tasks/${encodeURIComponent(id)}`);
  }

  deleteFile(name: string): Promise<DeletedFile> {
    return this.request('DELETE', `/tasks/delete_file?file_name=${encodeURIComponent(name)}`);
  }

  waitForValidation(id: string, opts: WaitOptions = {}): Promise<ValidationStatus> {
    return follow(
      (wait) => this.validationStatus(id, wait),
      (s) => isFinal(s.status),
      opts,
    );
  }

  waitForTask(id: string, opts: WaitOptions = {}): Promise<TaskState> {
    return follow(
      (wait) => this.task(id, wait),
      (s) => isFinalTaskStatus(s.status),
      opts,
    );
  }

  private async request<T>(method: string, route: string, body?: FormData | string): Promise<T> {
    const url = this.settings.url + route;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          Authorization: `Bearer ${this.settings.token}`,
          Accept: 'application/json',
          ...(typeof body === 'string' ? { 'Content-Type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body } : {}),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new ConnectionError(`cannot reach ${this.settings.url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new ConnectionError(`${method} ${url} answered HTTP ${res.status} with something that is not JSON`);
    }
    if (!res.ok) {
      const e = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      throw new ApiError(res.status, String(e?.code ?? 'http_error'), String(e?.message ?? `HTTP ${res.status}`));
    }
    return json as T;
  }
}

function waitQuery(wait?: { seconds: number; knownStatus: string }): string {
  return wait ? `?wait=${wait.seconds}&known_status=${encodeURIComponent(wait.knownStatus)}` : '';
}

/**
 * Asks for the status until `done`. Every request after the first carries the last status seen,
 * so a long-polling server holds the answer until something changes; an answer that comes back at
 * once unchanged means the server does not long-poll (or ignores `wait`), so we pause before the
 * next one.
 */
async function follow<S extends { status: string }>(
  get: (wait?: { seconds: number; knownStatus: string }) => Promise<S>,
  done: (s: S) => boolean,
  opts: WaitOptions,
): Promise<S> {
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  // A known status is not final, so the loop below replaces it with a real answer before returning.
  let s = opts.knownStatus !== undefined ? ({ status: opts.knownStatus } as S) : await get();
  opts.onStatus?.(s.status);
  while (!done(s)) {
    const left = deadline - Date.now();
    if (left <= 0) throw new WaitTimeoutError(s.status);
    const seconds = Math.max(1, Math.min(LONG_POLL_S, Math.floor(left / 1000)));
    const asked = Date.now();
    const next = await get({ seconds, knownStatus: s.status });
    if (next.status !== s.status) opts.onStatus?.(next.status);
    else if (Date.now() - asked < (1000 * Math.min(1, seconds)) / 2) await sleep(POLL_INTERVAL_MS);
    s = next;
  }
  return s;
}

export class WaitTimeoutError extends Error {
  constructor(readonly lastStatus: string) {
    super(`still ${lastStatus} when the wait ran out`);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
