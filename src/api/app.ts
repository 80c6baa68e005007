/** The HTTP API: routes, bearer auth, and the one error translation. No listening here (see app/main.ts). */
import express, { type Express } from 'express';
import type { Config } from '../config';
import { NotFoundError } from '../errors';
import type { Logger } from '../logger';
import { Metrics } from '../metrics';
import { Readiness, temporalCheck } from '../readiness';
import type { TaskService } from '../tasks/task-service';
import type { ValidationService } from '../validation/service';
import { requireBearer, type ApiKey } from './auth';
import { errorHandler } from './error-handler';
import { httpMetrics } from './http-metrics';
import { methodNotAllowed } from './methods';
import { API_ROUTES, openApiDocument } from './openapi';
import { opsRouteSpecs, opsRoutes } from './ops-routes';
import { taskRoutes } from './task-routes';
import { uploadRoutes } from './upload';
import { validationRoutes } from './validation-routes';

export interface AppDeps {
  config: Config;
  keys: ApiKey[];
  validations: ValidationService;
  tasks: TaskService;
  log: Logger;
  /** Whether Temporal answers, for /healthz. */
  temporalHealthy(): Promise<boolean>;
  /** For /metrics (HTTP requests are counted into it); a fresh one by default. */
  metrics?: Metrics;
  /** For /readyz; by default it checks Temporal only. */
  readiness?: Readiness;
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple'); // no nested objects from ?a[b]=c

  const metrics = deps.metrics ?? new Metrics();
  const readiness = deps.readiness ?? new Readiness().add('temporal', temporalCheck(deps.temporalHealthy));
  app.use(httpMetrics(metrics, API_ROUTES));
  app.use(methodNotAllowed(API_ROUTES));
  app.use(opsRoutes({ openApi: openApiDocument(), temporalHealthy: deps.temporalHealthy, readiness, metrics }));
  app.use(requireBearer(deps.keys));
  app.use(uploadRoutes(deps));
  app.use(validationRoutes(deps));
  app.use(taskRoutes(deps));
  app.use((req) => {
    throw new NotFoundError(`no route ${req.method} ${req.path}`, 'route_not_found');
  });
  app.use(errorHandler(deps.log.child({ component: 'api' })));
  return app;
}

/** Only /healthz, /readyz, /metrics and /openapi.json (OPS_PORT): for processes that run no API. */
export function createOpsApp(deps: Pick<AppDeps, 'temporalHealthy' | 'log'> & { metrics: Metrics; readiness: Readiness }): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(httpMetrics(deps.metrics, opsRouteSpecs));
  app.use(methodNotAllowed(opsRouteSpecs));
  app.use(opsRoutes({ openApi: openApiDocument(), ...deps }));
  app.use((req) => {
    throw new NotFoundError(`no route ${req.method} ${req.path}`, 'route_not_found');
  });
  app.use(errorHandler(deps.log.child({ component: 'ops' })));
  return app;
}
