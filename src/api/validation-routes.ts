/** `GET /tasks/validation_status/{validation_id}`: the record or the validation workflow's `status` query; with `?wait=` a long poll (src/long-poll.ts). */
import { Router } from 'express';
import { z } from 'zod';
import { NotFoundError } from '../errors';
import { VALIDATION_ID_RE } from '../../domain/names';
import type { ValidationService } from '../validation/service';
import { ownerOf } from './auth';
import { parse } from './parse';
import { error, json, mount, unauthorized, type RouteSpec } from './route-spec';
import { ValidationId, ValidationStatusQuery, ValidationStatusSchema } from './schemas';

export const validationStatusSpec: RouteSpec = {
  method: 'get',
  path: '/tasks/validation_status/{validation_id}',
  summary: "A validation's status (the workflow's status query; works after it finished); with wait, a long poll",
  request: { params: z.object({ validation_id: ValidationId }), query: ValidationStatusQuery },
  responses: {
    200: json(
      'Status (with wait: once it differs from known_status or is final (until=final: once final), else unchanged after wait seconds)',
      ValidationStatusSchema,
    ),
    400: error('Bad wait, known_status or until'),
    ...unauthorized,
    404: error("Unknown id, or another owner's"),
  },
};

export const validationRouteSpecs = [validationStatusSpec];

export function validationRoutes(deps: { validations: ValidationService }): Router {
  const router = Router();
  mount(router, validationStatusSpec, async (req, res) => {
    const id = String(req.params.validation_id);
    // A malformed id is as unknown as a well-formed one nobody issued.
    if (!VALIDATION_ID_RE.test(id)) throw new NotFoundError(`no validation ${JSON.stringify(id.slice(0, 64))}`, 'validation_not_found');
    const q = parse(ValidationStatusQuery, req.query, 'query', 'invalid_query');
    res.json(
      await deps.validations.status(ownerOf(res), id, q.wait ? { seconds: q.wait, known: q.known_status, until: q.until } : undefined),
    );
  });
  return router;
}
