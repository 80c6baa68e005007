/**
 * 405 for a known path asked with a method it does not serve (404 stays for unknown paths), with
 * the `Allow` header; OPTIONS answers 204 with it. Runs before authentication: which methods a path
 * has is public (GET /openapi.json), and no handler runs either way.
 */
import type { RequestHandler } from 'express';
import { MethodNotAllowedError } from '../errors';
import { routePattern } from './route-spec';

export interface RouteMethod {
  method: string;
  /** OpenAPI style: `/tasks/{task_id}`. */
  path: string;
}

interface PathMethods {
  re: RegExp;
  /** Literal segments: where several templates match (`/tasks/delete_file` and `/tasks/{task_id}`), the most literal wins, as Express's route order does. */
  literals: number;
  methods: string[];
  /** What the Allow header names: the methods, and HEAD where GET is served. */
  allow: string[];
}

function template(path: string): { re: RegExp; literals: number } {
  const segments = path.replace(/\/+$/, '').split('/').slice(1);
  return { re: routePattern(path), literals: segments.filter((s) => !s.startsWith('{')).length };
}

export function methodNotAllowed(routes: readonly RouteMethod[]): RequestHandler {
  const byPath = new Map<string, PathMethods>();
  for (const r of routes) {
    const key = r.path.replace(/\/+$/, '') || '/';
    const entry = byPath.get(key) ?? { ...template(key), methods: [], allow: [] };
    entry.methods.push(r.method.toUpperCase());
    byPath.set(key, entry);
  }
  for (const p of byPath.values()) p.allow = p.methods.includes('GET') ? [...p.methods, 'HEAD'] : [...p.methods];
  const paths = [...byPath.values()].sort((a, b) => b.literals - a.literals);
  return (req, res, next) => {
    const known = paths.find((p) => p.re.test(req.path));
    if (!known) return next();
    const { allow } = known;
    if (allow.includes(req.method)) return next();
    if (req.method === 'OPTIONS') {
      res
        .set('Allow', [...allow, 'OPTIONS'].join(', '))
        .status(204)
        .end();
      return;
    }
    next(new MethodNotAllowedError(req.method, req.path, allow));
  };
}
