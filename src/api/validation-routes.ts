/** `GET /tasks/validation_status/{validation_id}`: the validation workflow's `status` query; with `?wait=` its `waitForChange` update (a long poll). */
import { Router } from 'express';
import { NotFoundError } from '../errors';
import { VALIDATION_ID_RE } from '../../domain/names';
import type { ValidationService } from '../validation/service';
import { ownerOf } from './auth';
import { parse } from './parse';
import { ValidationStatusQuery } from './schemas';

export function validationRoutes(deps: { validations: ValidationService }): Router {
  const router = Router();
  router.get('/tasks/validation_status/:validation_id', async (req, res) => {
    const id = req.params.validation_id;
    // A malformed id is as unknown as a well-formed one nobody issued.
    if (!VALIDATION_ID_RE.test(id)) throw new NotFoundError(`no validation ${JSON.stringify(id.slice(0, 64))}`, 'validation_not_found');
    const q = parse(ValidationStatusQuery, req.query, 'query', 'invalid_query');
    res.json(await deps.validations.status(ownerOf(res), id, q.wait ? { seconds: q.wait, known: q.known_status } : undefined));
  });
  return router;
}
