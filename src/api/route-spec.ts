/**
 * A route is declared once, as a spec: `mount` gives it to Express at that path and `openapi.ts` turns the
 * list of all specs into the OpenAPI document (@asteasolutions/zod-to-openapi), with the zod schemas the
 * handlers parse with. test/openapi.test.ts fails when a route is mounted without a spec or the reverse.
 */
import type { ResponseConfig, RouteConfig } from '@asteasolutions/zod-to-openapi';
import type { RequestHandler, Router } from 'express';
import { z } from 'zod';
import { ErrorSchema } from './schemas';

export type HttpMethod = 'get' | 'post' | 'delete';

/** `path` in OpenAPI style (`/tasks/{task_id}`). */
export type RouteSpec = RouteConfig & { method: HttpMethod; summary: string };

/** `/tasks/{task_id}` → `/tasks/:task_id` */
export function expressPath(openApiPath: string): string {
  return openApiPath.replace(/\{(\w+)\}/g, ':$1');
}

/** `/tasks/{task_id}` → /^\/tasks\/[^/]+\/?$/: the paths Express's route for it matches (with or without a trailing slash). */
export function routePattern(openApiPath: string): RegExp {
  const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const body = openApiPath
    .replace(/\/+$/, '')
    .split(/\{\w+\}/)
    .map(literal)
    .join('[^/]+');
  return new RegExp(`^${body}/?$`);
}

export function mount(router: Router, spec: RouteSpec, ...handlers: RequestHandler[]): void {
  router[spec.method](expressPath(spec.path), ...handlers);
}

export function json(description: string, schema: z.ZodType, extra: Omit<ResponseConfig, 'description' | 'content'> = {}): ResponseConfig {
  return { description, ...extra, content: { 'application/json': { schema } } };
}

export function error(description: string): ResponseConfig {
  return json(description, ErrorSchema);
}

export const unauthorized = { 401: error('Missing or invalid bearer token') };

export const tooManyRequests = {
  429: {
    ...error(
      "An owner's quota or rate limit is used up (error.limit names it: uploads_per_minute, validations_in_flight, file_names, stored_bytes, tasks_per_minute, tasks_in_flight); nothing was kept",
    ),
    headers: { 'Retry-After': { description: 'Seconds to wait before trying again', schema: { type: 'integer' as const } } },
  },
};

/** For routes that need no token (the global default is the bearer scheme). */
export const noToken = { security: [] };
