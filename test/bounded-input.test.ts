/**
 * No request can jam the system (issue 9, item 4), against the real API over loopback HTTP, a real
 * Temporal dev server, a validation worker and a task worker with real runsc sandboxes:
 * bounded JSON depth/size at the edge, compact records, an upload written whole or not at all, recovery,
 * delete racing an upload, and the small HTTP defects (encodings, Node's own rejections, 405,
 * client aborts, `__proto__`, a BOM, `scheduled_at` far ahead).
 */
import http from 'node:http';
import net from 'node:net';
import zlib from 'node:zlib';
import request from 'supertest';
import type { TaskState } from '../domain/task';
import { nestsDeeperThan } from '../src/api/json-bounds';
import { createHttpServer, listen } from '../src/api/server';
import { ConfigError, loadConfig, type Config } from '../src/config';
import { sha256Hex } from '../src/storage';
import type { Logger } from '../src/logger';
import { silentLogger } from '../src/logger';
import { testConfig } from './helpers/sandbox';
import { startPipeline, type Pipeline } from './helpers/pipeline';
import { startTemporal, type StartedTemporal } from './helpers/temporal';
import { ALICE, promotedSource, stored, suiteEnv, type TestApi } from './helpers/validation';

/** Log lines, as an operator would see them. */
const logs: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
function recordingLogger(base: Record<string, unknown> = {}): Logger {
  const at =
    (level: string) =>
    (msg: string, fields: Record<string, unknown> = {}) =>
      void logs.push({ level, msg, fields: { ...base, ...fields } });
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (f) => recordingLogger({ ...base, ...f }) };
}

let temporal: StartedTemporal;
let config: Config;
let api: TestApi;
let server: http.Server;
let port: number;
let pipeline: Pipeline | undefined;

// Returns its payload, or with {"n": N} a result N levels deep.
const ECHO = `def handler(payload):
    if "n" in payload:
        v = {}
        for _ in range(payload["n"] - 1):
            v = [v]
        return v
    return payload
`;

// Writes a line nested 5000 deep on its private result channel (fd from argv), as hostile code could.
const FORGE_DEEP = `import os
import sys


def handler(payload):
    if payload.get("forge"):
        os.write(int(sys.argv[1]), b"[" * 5000 + b"]" * 5000 + b"\\n")
    return {"ok": True}
`;

// Returns {"n": 2**p + 1}: exact in JavaScript up to p = 52.
const POWER = `def handler(payload):
    return {"n": 2 ** payload.get("p", 0) + 1}
`;

/** `{"a": [[...]]}` with `depth` levels of containers in all, as JSON text (JSON.stringify itself overflows past a few thousand). */
function nestedJson(depth: number): string {
  return `{"a":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;
}
const nested = (depth: number): Record<string, unknown> => JSON.parse(nestedJson(depth));

const auth = { Authorization: `Bearer ${ALICE}` };
const http_ = () => request(server);

function uploadFile(name: string, source: string | Buffer, testPayloads?: string) {
  let req = http_()
    .post('/tasks/upload_file')
    .query({ file_name: name })
    .set(auth)
    .attach('file', Buffer.isBuffer(source) ? source : Buffer.from(source, 'utf8'), {
      filename: 'upload.py',
      contentType: 'text/x-python',
    });
  if (testPayloads !== undefined) req = req.field('test_payloads', testPayloads);
  return req;
}

async function finalStatus(id: string, timeoutMs = 90000): Promise<Record<string, unknown>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const res = await http_().get(`/tasks/validation_status/${id}`).set(auth);
    expect(res.status).toBe(200);
    if (res.body.status === 'VALIDATED' || res.body.status === 'REJECTED') return res.body;
    if (Date.now() > until) throw new Error(`validation ${id} still ${res.body.status}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

async function validated(name: string, source: string): Promise<void> {
  const res = await uploadFile(name, source);
  expect(res.status).toBe(202);
  expect(await finalStatus(res.body.validation_id)).toMatchObject({ status: 'VALIDATED', promoted: true });
}

async function runTask(body: Record<string, unknown>): Promise<TaskState> {
  const res = await http_().post('/tasks/').set(auth).send(body);
  expect(res.status).toBe(201);
  const until = Date.now() + 90000;
  for (;;) {
    const t = await http_().get(`/tasks/${res.body.task_id}`).set(auth);
    if (['COMPLETED', 'FAILED', 'CANCELLED'].includes(t.body.status)) return t.body as TaskState;
    if (Date.now() > until) throw new Error(`task ${res.body.task_id} still ${t.body.status}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** Sends raw bytes to `port` and returns what came back before the server closed the connection. */
function rawHttp(data: string, opts: { port?: number; holdMs?: number } = {}): Promise<{ status: number; headers: string; body: unknown }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(opts.port ?? port, '127.0.0.1', () => s.write(data));
    let got = '';
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => {
      const [head, ...rest] = got.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0);
      let body: unknown = rest.join('\r\n\r\n');
      try {
        body = JSON.parse(body as string);
      } catch {
        /* left as text: the assertion shows it */
      }
      resolve({ status, headers: head, body });
    });
    setTimeout(() => s.destroy(new Error(`no answer within ${opts.holdMs ?? 15000} ms`)), opts.holdMs ?? 15000).unref();
  });
}

/** A POST with exactly these bytes (supertest would JSON-encode a Buffer sent as application/json). */
function postRaw(url: string, headers: Record<string, string>, body: Buffer): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: url, method: 'POST', headers: { ...auth, ...headers, 'Content-Length': body.length } },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const errorShape = (code: string) => ({ error: expect.objectContaining({ code, message: expect.any(String) }) });

beforeAll(async () => {
  temporal = await startTemporal();
  const env = suiteEnv(temporal.address, {
    TASK_WORKER_SLOTS: '1',
    TASK_PAYLOAD_TIMEOUT_MS: '4000',
    VALIDATION_WORKER_CONCURRENCY: '2',
  });
  config = testConfig(env);
  pipeline = await startPipeline(config, temporal, { apiLog: recordingLogger() });
  ({ api } = pipeline);
  server = createHttpServer(api.app, { ...config.http, port: 0 }, recordingLogger({ component: 'http' }));
  await listen(server, { ...config.http, port: 0 });
  port = (server.address() as net.AddressInfo).port;
  await Promise.all([validated('echo', ECHO), validated('forge_deep', FORGE_DEEP)]);
}, 300000);

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await pipeline?.stop();
  await temporal?.stop();
});

describe('JSON depth and size are bounded at the edge', () => {
  test('the depth counts containers, at any depth without recursion', () => {
    expect(nestsDeeperThan(nested(64), 64)).toBe(false);
    expect(nestsDeeperThan(nested(65), 64)).toBe(true);
    expect(nestsDeeperThan({}, 1)).toBe(false);
    expect(nestsDeeperThan('x', 0)).toBe(false);
    expect(nestsDeeperThan(JSON.parse('{"__proto__": {"a": []}}'), 2)).toBe(true);
    expect(nestsDeeperThan(JSON.parse('['.repeat(200000) + ']'.repeat(200000)), 64)).toBe(true);
  });

  test.each([65, 2000, 5000])('test_payloads nested %i deep: 400 payload_too_deep, nothing written', async (depth) => {
    const before = await stored(config, api.storage);
    const res = await uploadFile('deep_tp', ECHO, `[{},${nestedJson(depth)}]`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual(errorShape('payload_too_deep'));
    expect(res.body.error).toMatchObject({ max_depth: 64, message: expect.stringContaining('test_payloads[1]') });
    expect(await stored(config, api.storage)).toEqual(before);
  });

  test('test_payloads larger than MAX_TEST_PAYLOADS_BYTES: 413, nothing written', async () => {
    const before = await stored(config, api.storage);
    const res = await uploadFile('big_tp', ECHO, JSON.stringify([{ s: 'x'.repeat(config.maxTestPayloadsBytes) }]));
    expect(res.status).toBe(413);
    expect(await stored(config, api.storage)).toEqual(before);
  });

  test.each([65, 1000, 4000, 5000])('a task payload nested %i deep: 400 payload_too_deep (not 201, not 503)', async (depth) => {
    const res = await http_()
      .post('/tasks/')
      .set(auth)
      .type('json')
      .send(`{"title":"echo","payload":${nestedJson(depth)}}`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual(errorShape('payload_too_deep'));
  });

  test('at the bound: 64-deep test payloads validate, the record stays compact, a 64-deep task payload runs', async () => {
    const res = await uploadFile('at_bound', ECHO, `[${nestedJson(64)}]`);
    expect(res.status).toBe(202);
    const { rows } = await api.storage.db.pool.query<{ text: string }>(
      'SELECT test_payloads::text AS text FROM validations WHERE validation_id = $1',
      [res.body.validation_id],
    );
    expect(rows[0].text).not.toContain('\n'); // no indentation growing with depth
    expect(rows[0].text.length).toBeLessThan(2000);
    expect(await finalStatus(res.body.validation_id)).toMatchObject({ status: 'VALIDATED' });
    const t = await runTask({ title: 'at_bound', payload: nested(64) });
    expect(t).toMatchObject({ status: 'COMPLETED', result: nested(64) });
  });

  test("a result nested deeper than MAX_JSON_DEPTH is the handler's failure (task and validation)", async () => {
    expect(await runTask({ title: 'echo', payload: { n: 64 } })).toMatchObject({ status: 'COMPLETED' });
    const t = await runTask({ title: 'echo', payload: { n: 65 } });
    expect(t).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      error: { type: 'HandlerFailed', message: expect.stringContaining('ResultTooDeep') },
    });
    const res = await uploadFile('too_deep_result', ECHO, JSON.stringify([{ n: 65 }]));
    const s = await finalStatus(res.body.validation_id);
    expect(s).toMatchObject({ status: 'REJECTED', findings: [expect.objectContaining({ code: 'result_too_deep' })] });
  });

  test("a result past JavaScript's safe integers fails the task and rejects the validation: result_unsafe_number", async () => {
    await validated('power', POWER);
    expect(await runTask({ title: 'power', payload: { p: 52 } })).toMatchObject({ status: 'COMPLETED', result: { n: 2 ** 52 + 1 } });
    for (const p of [53, 63, 400]) {
      const t = await runTask({ title: 'power', payload: { p } });
      expect(t).toMatchObject({
        status: 'FAILED',
        attempts: 1,
        error: { type: 'HandlerFailed', message: expect.stringContaining('ResultUnsafeNumber') },
      });
    }
    const res = await uploadFile('power_rejected', POWER, JSON.stringify([{ p: 3 }, { p: 64 }]));
    const s = await finalStatus(res.body.validation_id);
    expect(s).toMatchObject({ status: 'REJECTED', findings: [expect.objectContaining({ code: 'result_unsafe_number' })] });
  });

  test('a handler writing a 5000-deep line on its result channel does not kill the sandbox agent', async () => {
    const t = await runTask({ title: 'forge_deep', payload: { forge: true } });
    // Caught as tampering with the result channel: the handler's fault, not retried as an infrastructure failure.
    expect(t).toMatchObject({ status: 'FAILED', attempts: 1, error: { type: 'ForbiddenBehaviour' } });
    expect(await runTask({ title: 'forge_deep', payload: {} })).toMatchObject({ status: 'COMPLETED', result: { ok: true } });
  });
});

describe('payloads are passed on as sent', () => {
  test('__proto__ keys in a task payload reach the handler and come back', async () => {
    const res = await http_()
      .post('/tasks/')
      .set(auth)
      .type('json')
      .send('{"title":"echo","payload":{"__proto__":{"x":1},"constructor":{"prototype":{"y":2}},"b":2}}');
    expect(res.status).toBe(201);
    let t: TaskState;
    do {
      await new Promise((r) => setTimeout(r, 150));
      t = (await http_().get(`/tasks/${res.body.task_id}`).set(auth)).body;
    } while (!['COMPLETED', 'FAILED'].includes(t.status));
    expect(t.status).toBe('COMPLETED');
    const echo = t.result as Record<string, unknown>;
    expect(Object.keys(echo)).toEqual(['__proto__', 'constructor', 'b']);
    expect(JSON.stringify(echo)).toBe('{"__proto__":{"x":1},"constructor":{"prototype":{"y":2}},"b":2}');
  });

  test('__proto__ keys in test_payloads reach the handler too', async () => {
    const strict =
      'def handler(payload):\n    if payload.get("__proto__") != {"x": 1}:\n        raise ValueError("no __proto__ in %r" % (payload,))\n    return {}\n';
    const res = await uploadFile('proto_tp', strict, '[{"__proto__":{"x":1}}]');
    expect(res.status).toBe(202);
    expect(await finalStatus(res.body.validation_id)).toMatchObject({ status: 'VALIDATED' });
  });

  test('a file starting with a UTF-8 BOM is taken as Python takes it: kept as uploaded, validated, run', async () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(ECHO)]);
    const res = await uploadFile('bom', bytes);
    expect(res.status).toBe(202);
    expect(await api.storage.records.get(res.body.validation_id)).toMatchObject({ size: bytes.length });
    expect(await finalStatus(res.body.validation_id)).toMatchObject({ status: 'VALIDATED', promoted: true });
    expect(await api.storage.files.uploadBytes(res.body.sha256)).toEqual(bytes);
    expect(Buffer.from((await promotedSource(api.storage, 'alice', 'bom'))!)).toEqual(bytes);
    expect(await runTask({ title: 'bom', payload: { k: 1 } })).toMatchObject({ status: 'COMPLETED', result: { k: 1 } });
  });
});

describe('scheduled_at', () => {
  test.each([
    ['an ISO time in year 9999', '9999-12-31T00:00:00Z'],
    ['unix seconds in year 9999', 253402300799],
    ['367 days ahead', new Date(Date.now() + 367 * 86_400_000).toISOString()],
  ])('%s: 400 scheduled_at_out_of_range (not silently capped)', async (_what, at) => {
    const res = await http_().post('/tasks/').set(auth).send({ title: 'echo', payload: {}, scheduled_at: at });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(errorShape('scheduled_at_out_of_range'));
    expect(res.body.error.max_days_ahead).toBe(366);
  });

  test('within the bound it is scheduled', async () => {
    const res = await http_()
      .post('/tasks/')
      .set(auth)
      .send({ title: 'echo', payload: {}, scheduled_at: Math.floor(Date.now() / 1000) + 300 * 86400 });
    expect(res.status).toBe(201);
    expect(res.body.status).toBe('SCHEDULED');
    expect((await http_().delete(`/tasks/${res.body.task_id}`).set(auth)).status).toBe(202);
  });
});

describe('records', () => {
  test('the recovery pass starts every upload whose workflow start was never confirmed', async () => {
    // A good upload written as the API writes it, whose start never happened (the API died right after).
    const bytes = Buffer.from(ECHO);
    const good = 'ff' + '0'.repeat(30);
    await api.storage.records.create(
      { validation_id: good, owner: 'alice', file_name: 'recovered', bytes, sha256: sha256Hex(bytes), workflow_id: `validation-${good}` },
      async () => undefined,
    );
    expect(await api.validations.recoverPendingStarts()).toBe(1);
    expect(await finalStatus(good)).toMatchObject({ status: 'VALIDATED', promoted: true });
    expect(await api.validations.recoverPendingStarts()).toBe(0);
  });

  test('an upload whose record cannot be written leaves nothing behind: no bytes, no record, no pointer', async () => {
    const { pool } = api.storage.db;
    await pool.query("ALTER TABLE validations ADD CONSTRAINT refuse_unrecorded CHECK (file_name <> 'unrecorded')");
    const before = await stored(config, api.storage);
    try {
      const res = await uploadFile('unrecorded', `${ECHO}\n# never stored\n`);
      expect(res.status).toBe(500);
      expect(res.body).toEqual(errorShape('internal_error'));
      expect(await stored(config, api.storage)).toEqual(before);
    } finally {
      await pool.query('ALTER TABLE validations DROP CONSTRAINT refuse_unrecorded');
    }
  });
});

describe('delete_file racing an upload of the same name', () => {
  test('the upload wins: 20 concurrent tries never end VALIDATED with promoted:false and no file', async () => {
    const names = ['race_a', 'race_b', 'race_c', 'race_d'];
    await Promise.all(names.map((n) => validated(n, ECHO)));
    const outcomes: string[] = [];
    await Promise.all(
      names.map(async (name, k) => {
        for (let i = 0; i < 5; i++) {
          const source = `${ECHO}\n# try ${i}\n`;
          const offsetMs = (i + k) % 6; // the delete starts 0-5 ms after the upload: both orders and the overlap
          const [up, del] = await Promise.all([
            uploadFile(name, source),
            new Promise((r) => setTimeout(r, offsetMs)).then(() => http_().delete(`/tasks/delete_file?file_name=${name}`).set(auth)),
          ]);
          expect(up.status).toBe(202);
          expect([200, 409]).toContain(del.status);
          const s = await finalStatus(up.body.validation_id);
          // The upload that was accepted is the one promoted, whatever the delete answered.
          expect(s).toMatchObject({ status: 'VALIDATED', promoted: true });
          expect(await promotedSource(api.storage, 'alice', name)).toBe(source);
          outcomes.push(`${del.status}`);
        }
      }),
    );
    expect(outcomes).toHaveLength(20);
  }, 600000);
});

describe('HTTP edges get the JSON error shape', () => {
  test.each([
    ['gzip', Buffer.from('not gzip at all')],
    ['deflate', Buffer.from('not deflate')],
    ['br', Buffer.from('not brotli')],
    ['gzip', zlib.gzipSync('{"title":"echo","payload":{}}').subarray(0, 12)],
  ])('a corrupt %s JSON body: 400 bad_content_encoding', async (encoding, body) => {
    const res = await postRaw('/tasks/', { 'Content-Type': 'application/json', 'Content-Encoding': encoding }, body);
    expect(res).toEqual({ status: 400, body: errorShape('bad_content_encoding') });
  });

  test('a well-formed gzip JSON body is read', async () => {
    const res = await postRaw(
      '/tasks/',
      { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' },
      zlib.gzipSync('{"title":"never_uploaded","payload":{}}'),
    );
    expect(res).toEqual({ status: 404, body: errorShape('task_file_not_found') });
  });

  test.each(['br', 'gzip'])('a multipart upload with Content-Encoding %s: 415, nothing written', async (encoding) => {
    const before = await stored(config, api.storage);
    const res = await uploadFile('encoded', ECHO).set('Content-Encoding', encoding);
    expect(res.status).toBe(415);
    expect(res.body).toEqual(errorShape('unsupported_content_encoding'));
    expect(await stored(config, api.storage)).toEqual(before);
  });

  test('a URL or headers over 16 KiB: 431 in JSON', async () => {
    const longUrl = await rawHttp(`GET /tasks/${'a'.repeat(17 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(longUrl).toMatchObject({ status: 431, body: errorShape('headers_too_large') });
    expect(longUrl.headers).toMatch(/content-type: application\/json/i);
    const bigHeader = await rawHttp(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(17 * 1024)}\r\n\r\n`);
    expect(bigHeader).toMatchObject({ status: 431, body: errorShape('headers_too_large') });
  });

  test('chunked with Content-Length, or garbage: 400 in JSON', async () => {
    const both = await rawHttp('POST /tasks/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    expect(both).toMatchObject({ status: 400, body: errorShape('bad_request') });
    expect(await rawHttp('NONSENSE\r\n\r\n')).toMatchObject({ status: 400, body: errorShape('bad_request') });
  });

  test('a client too slow with its headers or its body: 408 in JSON', async () => {
    const slow = createHttpServer(api.app, { ...config.http, port: 0, headersTimeoutMs: 300, requestTimeoutMs: 800 }, silentLogger);
    await listen(slow, { ...config.http, port: 0 });
    const slowPort = (slow.address() as net.AddressInfo).port;
    try {
      const headers = await rawHttp('GET /healthz HTTP/1.1\r\nHost: x\r\n', { port: slowPort });
      expect(headers).toMatchObject({ status: 408, body: errorShape('request_timeout') });
      const body = await rawHttp(
        `POST /tasks/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ALICE}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ti`,
        { port: slowPort },
      );
      expect(body).toMatchObject({ status: 408, body: errorShape('request_timeout') });
    } finally {
      slow.closeAllConnections();
      await new Promise((r) => slow.close(r));
    }
  });

  test.each([
    ['PUT', '/tasks/upload_file?file_name=x', 'POST'],
    ['PATCH', '/tasks/', 'POST, GET, HEAD'],
    ['POST', '/tasks/0b0e1c1e-1b1b-4c4c-8d8d-0123456789ab', 'GET, DELETE, HEAD'],
    ['DELETE', '/tasks/validation_status/0123456789abcdef0123456789abcdef', 'GET, HEAD'],
    ['POST', '/tasks/delete_file?file_name=x', 'DELETE'],
    ['POST', '/healthz', 'GET, HEAD'],
    ['PUT', '/openapi.json', 'GET, HEAD'],
  ])('%s %s: 405 with Allow: %s', async (method, url, allow) => {
    const res = await http_()[method.toLowerCase() as 'put'](url).set(auth);
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe(allow);
    expect(res.body).toEqual(errorShape('method_not_allowed'));
  });

  test('OPTIONS lists the methods; unknown paths stay 404', async () => {
    const opts = await http_().options('/tasks/upload_file');
    expect(opts.status).toBe(204);
    expect(opts.headers.allow).toBe('POST, OPTIONS');
    const unknown = await http_().put('/nowhere').set(auth);
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual(errorShape('route_not_found'));
  });

  test.each([
    [
      'an upload',
      'upload_file?file_name=aborted',
      'multipart/form-data; boundary=XX',
      '--XX\r\nContent-Disposition: form-data; name="file"; filename="a.py"\r\nContent-Type: text/x-python\r\n\r\n' + 'x = 1\n'.repeat(500),
    ],
    ['a task body', '', 'application/json', '{"title": "echo", "payload": {"s": "' + 'x'.repeat(3000)],
  ])('a client aborting %s is one warning, not an error', async (_what, url, type, body) => {
    logs.length = 0;
    await new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.write(
          `POST /tasks/${url} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ALICE}\r\nContent-Type: ${type}\r\nContent-Length: 100000\r\n\r\n${body}`,
        );
        setTimeout(() => s.destroy(), 200);
      });
      s.on('close', () => resolve());
    });
    const until = Date.now() + 5000;
    while (!logs.some((l) => l.msg === 'client aborted the request') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 200)); // a second report would come right after the first
    expect(logs.filter((l) => l.level === 'error')).toEqual([]);
    expect(logs.filter((l) => l.msg === 'client aborted the request')).toHaveLength(1);
  });
});

describe('configuration', () => {
  test('the bounds are read once, with their limits checked', () => {
    expect(loadConfig({}).sandbox.limits.jsonMaxDepth).toBe(64);
    expect(() => loadConfig({ MAX_JSON_DEPTH: '257' })).toThrow(ConfigError);
    expect(() => loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '5000', HTTP_REQUEST_TIMEOUT_MS: '1000' })).toThrow(ConfigError);
    expect(loadConfig({ MAX_SCHEDULE_AHEAD_DAYS: '30' }).maxScheduleAheadDays).toBe(30);
  });
});
