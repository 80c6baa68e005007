/** Request parsing with zod: failures become 400s naming the offending field. */
import type { z } from 'zod';
import { BadRequestError } from '../errors';

export function parse<S extends z.ZodType>(schema: S, value: unknown, what: string, code = 'invalid_request'): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue?.path.length ? issue.path.join('.') : what;
  throw new BadRequestError(`${where}: ${issue?.message ?? 'invalid'}`, code);
}
