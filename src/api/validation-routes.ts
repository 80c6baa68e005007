/** `GET /tasks/validation_status/{validation_id}`: the validation workflow's `status` query. */
import { Router } from 'express';
import { NotFoundError } from '../errors';
import { VALIDATION_ID_RE } from '../../domain/names';
import type { ValidationService } from '../validation/service';
import { ownerOf } from './auth';

export function validationRoutes(deps: { validations: ValidationService }): Router {
  const router = Router();
  router.get('/tasks/validation_status/:validation_id', async (req, res) => {
    const id = req.params.validation_id;
    // A malformed id is as unknown as a well-formed one nobody issued.
    if (!VALIDATION_ID_RE.test(id)) throw new NotFoundError(`no validation ${JSON.stringify(id.slice(0, 64))}`, 'validation_not_found');
    res.json(await deps.validations.status(ownerOf(res), id));
  });
  return router;
}
