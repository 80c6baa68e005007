/**
 * 405 for a known path asked with a method it does not serve (404 stays for unknown paths), with
 * the `Allow` header; OPTIONS answers 204 with it. Runs before authentication: which methods a path
 * has is public (GET /openapi.json), and no handler runs either way.
 */
import type { RequestHandler } from 'express';
import { MethodNotAllowedError } from '../errors';

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
}

function template(path: string): { re: RegExp; literals: number } {
  const segments = path.replace(/\/+$/, '').split('/').slice(1);
  const pattern = segments.map((s) => (/^\{\w+\}$/.test(s) ? '[^/]+' : s.replace(/[.*+?^$()|[\]\\]/g, '\\$&'))).join('/');
  return { re: new RegExp(`^/${pattern}/?$`), literals: segments.filter((s) => !s.startsWith('{')).length };
}

export function methodNotAllowed(routes: readonly RouteMethod[]): RequestHandler {
  const byPath = new Map<string, PathMethods>();
  for (const r of routes) {
    const key = r.path.replace(/\/+$/, '') || '/';
    const entry = byPath.get(key) ?? { ...template(key), methods: [] };
    entry.methods.push(r.method.toUpperCase());
    byPath.set(key, entry);
  }
  const paths = [...byPath.values()].sort((a, b) => b.literals - a.literals);
  return (req, res, next) => {
    const known = paths.find((p) => p.re.test(req.path));
    if (!known) return next();
    const allow = [...known.methods];
    if (allow.includes('GET')) allow.push('HEAD');
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
