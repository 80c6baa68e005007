/**
 * `POST /tasks/` (create a task from a validated file) and `DELETE /tasks/delete_file`.
 * Task execution itself sits behind the `TaskService` seam (src/tasks/task-service.ts).
 */
import express, { Router } from 'express';
import { z } from 'zod';
import type { Config } from '../config';
import { BadRequestError, UnsupportedMediaTypeError } from '../errors';
import { normalizeFileName } from '../../domain/names';
import type { TaskService } from '../tasks/task-service';
import type { ValidationService } from '../validation/service';
import { ownerOf } from './auth';
import { assertDepth } from './json-bounds';
import { parse } from './parse';
import { error, json, mount, tooManyRequests, unauthorized, type RouteSpec } from './route-spec';
import {
  CreatedTaskSchema,
  DeletedFileSchema,
  FileNameQuery,
  TaskCreateBody,
  TaskGetQuery,
  TaskId,
  TaskListPageSchema,
  TaskListQuerySchema,
  TaskStateSchema,
} from './schemas';

const TaskIdParams = z.object({ task_id: TaskId });
const unknownTask = { 404: error("Unknown id, or another owner's") };

export const createTaskSpec: RouteSpec = {
  method: 'post',
  path: '/tasks/',
  summary: 'Create a task from a validated task file (pinned to its validated sha256)',
  request: { body: { required: true, content: { 'application/json': { schema: TaskCreateBody } } } },
  responses: {
    201: json('Task created', CreatedTaskSchema),
    400: error('Invalid body'),
    ...unauthorized,
    404: error('The file was never uploaded, was deleted, or its last upload was rejected'),
    412: error("The file's last upload is still being validated"),
    413: error('Body too large'),
    415: error('Not JSON'),
    ...tooManyRequests,
    503: error('The workflow service is unavailable; nothing was created'),
  },
};

export const deleteFileSpec: RouteSpec = {
  method: 'delete',
  path: '/tasks/delete_file',
  summary: "Remove the owner's promoted task file (validated versions pinned by tasks stay)",
  request: { query: FileNameQuery },
  responses: {
    200: json('Deleted', DeletedFileSchema),
    400: error('Bad file name'),
    ...unauthorized,
    404: error('Nothing promoted under that name'),
    409: error('An upload of that name is still being validated'),
  },
};

export const listTasksSpec: RouteSpec = {
  method: 'get',
  path: '/tasks/',
  summary: "List the owner's tasks, newest first, filtered and paged",
  request: { query: TaskListQuerySchema },
  responses: { 200: json('A page of tasks', TaskListPageSchema), 400: error('Bad filter'), ...unauthorized },
};

export const getTaskSpec: RouteSpec = {
  method: 'get',
  path: '/tasks/{task_id}',
  summary: "A task's status, result or error, attempts, times and metrics; with wait, a long poll",
  request: { params: TaskIdParams, query: TaskGetQuery },
  responses: {
    200: json(
      'The task (with wait: once its status differs from known_status or is final (until=final: once final), else unchanged after wait seconds)',
      TaskStateSchema,
    ),
    400: error('Bad wait, known_status or until'),
    ...unauthorized,
    ...unknownTask,
  },
};

export const cancelTaskSpec: RouteSpec = {
  method: 'delete',
  path: '/tasks/{task_id}',
  summary: 'Cancel a task that has not finished (a running sandbox is killed)',
  request: { params: TaskIdParams },
  responses: {
    202: json('Cancellation requested; the task becomes CANCELLED', TaskStateSchema),
    ...unauthorized,
    ...unknownTask,
    409: error('The task has already finished'),
  },
};

/** In mounting order: /tasks/delete_file before /tasks/{task_id}, which would otherwise shadow it. */
export const taskRouteSpecs = [createTaskSpec, deleteFileSpec, listTasksSpec, getTaskSpec, cancelTaskSpec];

export function taskRoutes(deps: { config: Config; validations: ValidationService; tasks: TaskService }): Router {
  const router = Router();
  const json = express.json({ limit: deps.config.maxTaskPayloadBytes, type: () => true });

  mount(
    router,
    createTaskSpec,
    (req, _res, next) => {
      if (!req.is('application/json')) throw new UnsupportedMediaTypeError('send a JSON body (Content-Type: application/json)');
      next();
    },
    json,
    async (req, res) => {
      const owner = ownerOf(res);
      const body = parse(TaskCreateBody, req.body, 'body', 'invalid_body');
      assertDepth(body.payload, deps.config.sandbox.limits.jsonMaxDepth, 'payload');
      const scheduledAt = scheduledTime(body.scheduled_at, deps.config.maxScheduleAheadDays);
      const file = await deps.validations.resolveForTask(owner, normalizeFileName(body.title));
      const created = await deps.tasks.create({
        owner,
        title: file.title,
        sha256: file.sha256,
        ...(file.lockSha256 ? { lockSha256: file.lockSha256 } : {}),
        validationId: file.validationId,
        payload: body.payload,
        priority: body.priority,
        ...(scheduledAt ? { scheduledAt } : {}),
      });
      res.status(201).json(created);
    },
  );

  mount(router, deleteFileSpec, async (req, res) => {
    const { file_name } = parse(FileNameQuery, req.query, 'file_name', 'invalid_file_name');
    res.json(await deps.validations.deleteFile(ownerOf(res), normalizeFileName(file_name)));
  });

  mount(router, listTasksSpec, async (req, res) => {
    const q = parse(TaskListQuerySchema, req.query, 'query', 'invalid_query');
    res.json(await deps.tasks.list(ownerOf(res), { ...q, ...(q.title ? { title: normalizeFileName(q.title) } : {}) }));
  });

  mount(router, getTaskSpec, async (req, res) => {
    const q = parse(TaskGetQuery, req.query, 'query', 'invalid_query');
    res.json(
      await deps.tasks.get(
        ownerOf(res),
        String(req.params.task_id),
        q.wait ? { seconds: q.wait, known: q.known_status, until: q.until } : undefined,
      ),
    );
  });

  mount(router, cancelTaskSpec, async (req, res) => {
    res.status(202).json(await deps.tasks.cancel(ownerOf(res), String(req.params.task_id)));
  });
  return router;
}

/** `scheduled_at` as an ISO time, at most `maxDays` ahead (Temporal would silently cap a longer timer at 100 years). */
function scheduledTime(at: string | number | undefined, maxDays: number): string | undefined {
  if (at === undefined) return undefined;
  const ms = typeof at === 'number' ? at * 1000 : Date.parse(at);
  if (ms - Date.now() > maxDays * 86_400_000) {
    throw new BadRequestError(`scheduled_at must be at most ${maxDays} days ahead`, 'scheduled_at_out_of_range', {
      max_days_ahead: maxDays,
    });
  }
  return new Date(ms).toISOString();
}
