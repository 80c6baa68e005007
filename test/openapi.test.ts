/**
 * The OpenAPI document and Express agree: every route Express serves is documented, every documented
 * route is served, and the document is self-consistent. No server needed: the router is walked.
 */
import type { Express } from 'express';
import request from 'supertest';
import { createApp } from '../src/api/app';
import { API_ROUTES, openApiDocument } from '../src/api/openapi';
import { expressPath } from '../src/api/route-spec';
import { silentLogger } from '../src/logger';
import { tasksNotEnabled } from '../src/tasks/task-service';
import type { ValidationService } from '../src/validation/service';
import { testConfig } from './helpers/sandbox';

interface Layer {
  route?: { path: string | string[]; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  slash?: boolean;
}

/** `METHOD /path` of every route in the app's router, routers mounted inside it included. */
function expressRoutes(app: Express): string[] {
  const out: string[] = [];
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
        for (const p of paths) for (const m of Object.keys(layer.route.methods)) out.push(`${m.toUpperCase()} ${normalize(p)}`);
      } else if (layer.handle?.stack) {
        // A router mounted under a prefix would need the prefix added: none is, and this says so if one appears.
        expect(layer.slash).toBe(true);
        walk(layer.handle.stack);
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return out.sort();
}

/** Express matches with or without a trailing slash (non-strict routing). */
const normalize = (p: string) => (p.length > 1 ? p.replace(/\/$/, '') : p);

function app(): Express {
  const config = testConfig();
  return createApp({
    config,
    keys: [{ owner: 'alice', token: 'alice-token-0123456789abcdef' }],
    validations: {} as ValidationService, // never called: nothing is requested but the document
    tasks: tasksNotEnabled,
    log: silentLogger,
    temporalHealthy: async () => true,
  });
}

const doc = openApiDocument() as {
  openapi: string;
  paths: Record<
    string,
    Record<string, { responses: Record<string, unknown>; parameters?: { name: string; in: string; schema: { type?: unknown } }[] }>
  >;
  components: { schemas: Record<string, unknown> };
};

test('every Express route is documented and every documented route exists', () => {
  const documented = Object.entries(doc.paths)
    .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${normalize(expressPath(p))}`))
    .sort();
  const served = expressRoutes(app());
  expect(served.length).toBeGreaterThanOrEqual(9);
  expect(served).toEqual(documented);
  expect(API_ROUTES.map((r) => `${r.method.toUpperCase()} ${normalize(expressPath(r.path))}`).sort()).toEqual(documented);
});

test('path parameters are declared, $refs resolve, every operation answers something documented', () => {
  const text = JSON.stringify(doc);
  expect(doc.openapi).toBe('3.1.0');
  const refs = [...text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]);
  expect(refs.filter((r) => !(r in doc.components.schemas))).toEqual([]);
  for (const [p, ops] of Object.entries(doc.paths)) {
    const inPath = [...p.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    for (const op of Object.values(ops)) {
      expect(Object.keys(op.responses).length).toBeGreaterThan(0);
      expect((op.parameters ?? []).filter((x) => x.in === 'path').map((x) => x.name)).toEqual(inPath);
      // One type per parameter: zod-to-openapi documents z.coerce numbers as "integer or null".
      for (const param of op.parameters ?? []) expect([p, param.name, typeof param.schema.type]).toEqual([p, param.name, 'string']);
    }
  }
});

test('/openapi.json serves the generated document without a token', async () => {
  const res = await request(app()).get('/openapi.json');
  expect(res.status).toBe(200);
  expect(res.body).toEqual(JSON.parse(JSON.stringify(doc)));
});
