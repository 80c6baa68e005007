/**
 * Counts and times every HTTP answer by route template (never the raw path: an unknown path is
 * `unmatched`), method (known ones, else OTHER), status and error code (set by the error handler).
 */
import type { RequestHandler } from 'express';
import type { Metrics } from '../metrics';
import { routePattern, type RouteSpec } from './route-spec';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export function httpMetrics(metrics: Metrics, routes: readonly RouteSpec[]): RequestHandler {
  const known = routes.map((r) => ({ method: r.method.toUpperCase(), path: r.path, re: routePattern(r.path) }));
  const routeOf = (method: string, path: string) =>
    (known.find((r) => r.method === method && r.re.test(path)) ?? known.find((r) => r.re.test(path)))?.path ?? 'unmatched';
  return (req, res, next) => {
    const t = performance.now();
    const path = req.path;
    res.once('close', () => {
      const method = METHODS.has(req.method) ? req.method : 'OTHER';
      // A client that went away before the answer was sent: 499, as nginx says.
      const status = res.writableFinished ? res.statusCode : 499;
      const code = typeof res.locals.errorCode === 'string' ? res.locals.errorCode : '';
      metrics.request(method, routeOf(req.method, path), status, code, (performance.now() - t) / 1000);
    });
    next();
  };
}
