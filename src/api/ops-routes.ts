/** The routes for operators and tools, answered without a token: /healthz and /openapi.json. */
import { Router } from 'express';
import { z } from 'zod';
import { json, mount, noToken, type RouteSpec } from './route-spec';
import { HealthSchema } from './schemas';

export const healthSpec: RouteSpec = {
  method: 'get',
  path: '/healthz',
  summary: 'Liveness and Temporal reachability (no token needed)',
  ...noToken,
  responses: { 200: json('Healthy', HealthSchema), 503: json('Temporal unreachable', HealthSchema) },
};

export const openApiSpec: RouteSpec = {
  method: 'get',
  path: '/openapi.json',
  summary: 'This document (no token needed)',
  ...noToken,
  responses: { 200: json('OpenAPI 3.1 document', z.record(z.string(), z.unknown())) },
};

export const opsRouteSpecs = [openApiSpec, healthSpec];

export interface OpsDeps {
  /** The OpenAPI document, made once. */
  openApi: unknown;
  /** Whether Temporal answers, for /healthz. */
  temporalHealthy(): Promise<boolean>;
}

export function opsRoutes(deps: OpsDeps): Router {
  const router = Router();
  mount(router, openApiSpec, (_req, res) => {
    res.json(deps.openApi);
  });
  mount(router, healthSpec, async (_req, res) => {
    const ok = await deps.temporalHealthy().catch(() => false);
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'degraded', temporal: ok ? 'ok' : 'unreachable' });
  });
  return router;
}
