/** The OpenAPI 3.1 document, generated from the same zod schemas the routes parse with. */
import { z } from 'zod';
import {
  CreatedTaskSchema,
  DeletedFileSchema,
  ErrorSchema,
  FileName,
  HealthSchema,
  TaskCreateBody,
  TaskGetQuery,
  TaskId,
  TaskListPageSchema,
  TaskListQuerySchema,
  TaskStateSchema,
  UploadAcceptedSchema,
  UploadForm,
  ValidationId,
  ValidationStatusQuery,
  ValidationStatusSchema,
} from './schemas';

const schema = (s: z.ZodType, io: 'input' | 'output' = 'output') => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

const json = (s: z.ZodType) => ({ content: { 'application/json': { schema: schema(s) } } });
const error = (description: string) => ({ description, ...json(ErrorSchema) });
const auth = { 401: error('Missing or invalid bearer token') };
/** One optional query parameter per property of a query schema. */
const queryParams = (s: z.ZodType) =>
  Object.entries(schema(s, 'input').properties as Record<string, unknown>).map(([name, p]) => ({ name, in: 'query', required: false, schema: p }));
const quota = {
  ...error("An owner's quota or rate limit is used up (error.limit names it: uploads_per_minute, validations_in_flight, file_names, stored_bytes, tasks_per_minute, tasks_in_flight); nothing was kept"),
  headers: { 'Retry-After': { description: 'Seconds to wait before trying again', schema: { type: 'integer' } } },
};

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'TaskFlow',
      version: '0.1.0',
      description: 'Upload Python task files, have them validated in gVisor sandboxes, run tasks with them.',
    },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths: {
      '/tasks/upload_file': {
        post: {
          summary: 'Upload a task file and start its validation',
          parameters: [{ name: 'file_name', in: 'query', required: true, schema: schema(FileName, 'input') }],
          requestBody: { required: true, content: { 'multipart/form-data': { schema: { ...schema(UploadForm, 'input'), properties: { file: { type: 'string', format: 'binary' }, test_payloads: schema(UploadForm.shape.test_payloads.unwrap(), 'input') } } } } },
          responses: {
            202: { description: 'Accepted: the validation runs; poll status_url', headers: { Location: { schema: { type: 'string' } } }, ...json(UploadAcceptedSchema) },
            400: error('Bad file name, missing or empty file, unexpected field, bad test_payloads'),
            ...auth,
            413: error('File (or test_payloads) larger than the limit'),
            415: error('Not multipart, or the file is binary / not a Python source type'),
            422: error('The file is not valid UTF-8'),
            429: quota,
            503: error('Temporal unavailable: the upload is kept and validated later (validation_id in the error)'),
          },
        },
      },
      '/tasks/validation_status/{validation_id}': {
        get: {
          summary: "A validation's status (the workflow's status query; works after it finished); with wait, a long poll",
          parameters: [{ name: 'validation_id', in: 'path', required: true, schema: schema(ValidationId) }, ...queryParams(ValidationStatusQuery)],
          responses: {
            200: { description: 'Status (with wait: once it differs from known_status or is final, else unchanged after wait seconds)', ...json(ValidationStatusSchema) },
            400: error('Bad wait or known_status'),
            ...auth,
            404: error('Unknown id, or another owner\'s'),
          },
        },
      },
      '/tasks/': {
        post: {
          summary: 'Create a task from a validated task file (pinned to its validated sha256)',
          requestBody: { required: true, content: { 'application/json': { schema: schema(TaskCreateBody, 'input') } } },
          responses: {
            201: { description: 'Task created', ...json(CreatedTaskSchema) },
            400: error('Invalid body'),
            ...auth,
            404: error('The file was never uploaded, was deleted, or its last upload was rejected'),
            412: error('The file\'s last upload is still being validated'),
            413: error('Body too large'),
            415: error('Not JSON'),
            429: quota,
            503: error('The workflow service is unavailable; nothing was created'),
          },
        },
        get: {
          summary: "List the owner's tasks, newest first, filtered and paged",
          parameters: queryParams(TaskListQuerySchema),
          responses: { 200: { description: 'A page of tasks', ...json(TaskListPageSchema) }, 400: error('Bad filter'), ...auth },
        },
      },
      '/tasks/{task_id}': {
        get: {
          summary: 'A task\'s status, result or error, attempts, times and metrics; with wait, a long poll',
          parameters: [{ name: 'task_id', in: 'path', required: true, schema: schema(TaskId) }, ...queryParams(TaskGetQuery)],
          responses: {
            200: { description: 'The task (with wait: once its status differs from known_status or is final, else unchanged after wait seconds)', ...json(TaskStateSchema) },
            400: error('Bad wait or known_status'),
            ...auth,
            404: error("Unknown id, or another owner's"),
          },
        },
        delete: {
          summary: 'Cancel a task that has not finished (a running sandbox is killed)',
          parameters: [{ name: 'task_id', in: 'path', required: true, schema: schema(TaskId) }],
          responses: {
            202: { description: 'Cancellation requested; the task becomes CANCELLED', ...json(TaskStateSchema) },
            ...auth,
            404: error("Unknown id, or another owner's"),
            409: error('The task has already finished'),
          },
        },
      },
      '/tasks/delete_file': {
        delete: {
          summary: "Remove the owner's promoted task file (validated versions pinned by tasks stay)",
          parameters: [{ name: 'file_name', in: 'query', required: true, schema: schema(FileName, 'input') }],
          responses: {
            200: { description: 'Deleted', ...json(DeletedFileSchema) },
            400: error('Bad file name'),
            ...auth,
            404: error('Nothing promoted under that name'),
            409: error('An upload of that name is still being validated'),
          },
        },
      },
      '/healthz': {
        get: {
          summary: 'Liveness and Temporal reachability (no token needed)',
          security: [],
          responses: { 200: { description: 'Healthy', ...json(HealthSchema) }, 503: { description: 'Temporal unreachable', ...json(HealthSchema) } },
        },
      },
      '/openapi.json': {
        get: { summary: 'This document (no token needed)', security: [], responses: { 200: { description: 'OpenAPI 3.1 document' } } },
      },
    },
  };
}
