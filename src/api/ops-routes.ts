/** The routes for operators and tools, answered without a token: /healthz, /readyz, /metrics, /openapi.json. */
import { Router } from 'express';
import { z } from 'zod';
import type { Metrics } from '../metrics';
import type { Readiness } from '../readiness';
import { json, mount, noToken, type RouteSpec } from './route-spec';
import { HealthSchema, ReadinessSchema } from './schemas';

export const healthSpec: RouteSpec = {
  method: 'get',
  path: '/healthz',
  summary: 'Liveness and Temporal reachability (no token needed)',
  ...noToken,
  responses: { 200: json('Healthy', HealthSchema), 503: json('Temporal unreachable', HealthSchema) },
};

export const readySpec: RouteSpec = {
  method: 'get',
  path: '/readyz',
  summary: "Readiness: Temporal reachable, and what this process's roles need (workers polling, Docker + runsc, its workers running)",
  ...noToken,
  responses: { 200: json('Ready', ReadinessSchema), 503: json('Not ready: the failing checks say why', ReadinessSchema) },
};

export const metricsSpec: RouteSpec = {
  method: 'get',
  path: '/metrics',
  summary: "This process's metrics (TaskFlow's and the Temporal SDK's) in Prometheus's text format (no token needed)",
  ...noToken,
  responses: { 200: { description: 'Prometheus text exposition format 0.0.4', content: { 'text/plain': { schema: z.string() } } } },
};

export const openApiSpec: RouteSpec = {
  method: 'get',
  path: '/openapi.json',
  summary: 'This document (no token needed)',
  ...noToken,
  responses: { 200: json('OpenAPI 3.1 document', z.record(z.string(), z.unknown())) },
};

export const opsRouteSpecs = [openApiSpec, healthSpec, readySpec, metricsSpec];

export interface OpsDeps {
  /** The OpenAPI document, made once. */
  openApi: unknown;
  /** Whether Temporal answers, for /healthz. */
  temporalHealthy(): Promise<boolean>;
  readiness: Readiness;
  metrics: Metrics;
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
  mount(router, readySpec, async (_req, res) => {
    const report = await deps.readiness.report();
    res.status(report.status === 'ready' ? 200 : 503).json(report);
  });
  mount(router, metricsSpec, async (_req, res) => {
    res.type(deps.metrics.contentType).send(await deps.metrics.render());
  });
  return router;
}
