/** The HTTP API: routes, bearer auth, and the one error translation. No listening here (see app/main.ts). */
import express, { type Express } from 'express';
import type { Config } from '../config';
import { NotFoundError } from '../errors';
import type { Logger } from '../logger';
import type { TaskService } from '../tasks/task-service';
import type { ValidationService } from '../validation/service';
import { requireBearer, type ApiKey } from './auth';
import { errorHandler } from './error-handler';
import { methodNotAllowed } from './methods';
import { apiRoutes, openApiDocument } from './openapi';
import { opsRoutes } from './ops-routes';
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
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple'); // no nested objects from ?a[b]=c

  app.use(methodNotAllowed(apiRoutes()));
  app.use(opsRoutes({ openApi: openApiDocument(), temporalHealthy: deps.temporalHealthy }));
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
