/**
 * `POST /tasks/` (create a task from a validated file) and `DELETE /tasks/delete_file`.
 * Task execution itself sits behind the `TaskService` seam (src/tasks/task-service.ts).
 */
import express, { Router } from 'express';
import type { Config } from '../config';
import { BadRequestError, UnsupportedMediaTypeError } from '../errors';
import { normalizeFileName } from '../../domain/names';
import type { TaskService } from '../tasks/task-service';
import type { ValidationService } from '../validation/service';
import { ownerOf } from './auth';
import { assertDepth } from './json-bounds';
import { parse } from './parse';
import { FileNameQuery, TaskCreateBody, TaskGetQuery, TaskListQuerySchema } from './schemas';

export function taskRoutes(deps: { config: Config; validations: ValidationService; tasks: TaskService }): Router {
  const router = Router();
  const json = express.json({ limit: deps.config.maxTaskPayloadBytes, type: () => true });

  router.post('/tasks', (req, _res, next) => {
    if (!req.is('application/json')) throw new UnsupportedMediaTypeError('send a JSON body (Content-Type: application/json)');
    next();
  }, json, async (req, res) => {
    const owner = ownerOf(res);
    const body = parse(TaskCreateBody, req.body, 'body', 'invalid_body');
    assertDepth(body.payload, deps.config.sandbox.limits.jsonMaxDepth, 'payload');
    const scheduledAt = scheduledTime(body.scheduled_at, deps.config.maxScheduleAheadDays);
    const file = await deps.validations.resolveForTask(owner, normalizeFileName(body.title));
    const created = await deps.tasks.create({
      owner,
      title: file.title,
      sha256: file.sha256,
      validationId: file.validationId,
      payload: body.payload,
      priority: body.priority,
      ...(scheduledAt ? { scheduledAt } : {}),
    });
    res.status(201).json(created);
  });

  router.delete('/tasks/delete_file', async (req, res) => {
    const { file_name } = parse(FileNameQuery, req.query, 'file_name', 'invalid_file_name');
    res.json(await deps.validations.deleteFile(ownerOf(res), normalizeFileName(file_name)));
  });

  router.get('/tasks', async (req, res) => {
    const q = parse(TaskListQuerySchema, req.query, 'query', 'invalid_query');
    res.json(await deps.tasks.list(ownerOf(res), { ...q, ...(q.title ? { title: normalizeFileName(q.title) } : {}) }));
  });

  // After /tasks/delete_file, which this would otherwise shadow.
  router.get('/tasks/:task_id', async (req, res) => {
    const q = parse(TaskGetQuery, req.query, 'query', 'invalid_query');
    res.json(await deps.tasks.get(ownerOf(res), String(req.params.task_id), q.wait ? { seconds: q.wait, known: q.known_status } : undefined));
  });

  router.delete('/tasks/:task_id', async (req, res) => {
    res.status(202).json(await deps.tasks.cancel(ownerOf(res), String(req.params.task_id)));
  });
  return router;
}

/** `scheduled_at` as an ISO time, at most `maxDays` ahead (Temporal would silently cap a longer timer at 100 years). */
function scheduledTime(at: string | number | undefined, maxDays: number): string | undefined {
  if (at === undefined) return undefined;
  const ms = typeof at === 'number' ? at * 1000 : Date.parse(at);
  if (ms - Date.now() > maxDays * 86_400_000) {
    throw new BadRequestError(`scheduled_at must be at most ${maxDays} days ahead`, 'scheduled_at_out_of_range', { max_days_ahead: maxDays });
  }
  return new Date(ms).toISOString();
}
