/**
 * The OpenAPI 3.1 document, generated from the route specs (route-spec.ts) the routes are mounted with,
 * and so from the zod schemas they parse with. test/openapi.test.ts checks it against Express's routes.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import { opsRouteSpecs } from './ops-routes';
import type { RouteSpec } from './route-spec';
import { taskRouteSpecs } from './task-routes';
import { uploadRouteSpecs } from './upload';
import { validationRouteSpecs } from './validation-routes';

/** Every route the API serves. */
export const API_ROUTES: readonly RouteSpec[] = [...opsRouteSpecs, ...uploadRouteSpecs, ...validationRouteSpecs, ...taskRouteSpecs];

export function openApiDocument(): Record<string, unknown> {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });
  for (const route of API_ROUTES) registry.registerPath(route);
  const doc = new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'TaskFlow',
      version: '0.1.0',
      description: 'Upload Python task files, have them validated in gVisor sandboxes, run tasks with them.',
    },
    security: [{ bearer: [] }],
  });
  return doc as unknown as Record<string, unknown>;
}
