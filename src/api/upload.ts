/**
 * `POST /tasks/upload_file?file_name=NAME`, multipart field `file` (+ optional `test_payloads`).
 * The name is checked before the body is read; the body is held in memory (bounded by
 * MAX_UPLOAD_BYTES, so no disk buffer is needed) and written once, with its record, to the database.
 */
import { Router, type RequestHandler } from 'express';
import multer from 'multer';
import type { Config } from '../config';
import { BadRequestError, UnprocessableError, UnsupportedMediaTypeError } from '../errors';
import { normalizeFileName } from '../../domain/names';
import type { ValidationService } from '../validation/service';
import { ownerOf } from './auth';
import { assertDepth } from './json-bounds';
import { parse } from './parse';
import { error, json, mount, tooManyRequests, unauthorized, type RouteSpec } from './route-spec';
import { FileNameQuery, TestPayloads, UploadAcceptedSchema, UploadForm } from './schemas';

/** What clients send for a .py file (curl -F sends application/octet-stream). */
const TEXT_TYPES = new Set([
  'application/octet-stream',
  'text/plain',
  'text/x-python',
  'text/x-python-script',
  'text/x-script.python',
  'application/x-python',
  'application/x-python-script',
]);

export const uploadFileSpec: RouteSpec = {
  method: 'post',
  path: '/tasks/upload_file',
  summary: 'Upload a task file and start its validation',
  request: {
    query: FileNameQuery,
    body: { required: true, content: { 'multipart/form-data': { schema: UploadForm } } },
  },
  responses: {
    202: json('Accepted: the validation runs; poll status_url', UploadAcceptedSchema, {
      headers: { Location: { schema: { type: 'string' } } },
    }),
    400: error('Bad file name, missing or empty file, unexpected field, bad test_payloads'),
    ...unauthorized,
    413: error('File (or test_payloads) larger than the limit'),
    415: error('Not multipart, or the file is binary / not a Python source type'),
    422: error('The file is not valid UTF-8'),
    ...tooManyRequests,
    503: error('Temporal unavailable: the upload is kept and validated later (validation_id in the error)'),
  },
};

export const uploadRouteSpecs = [uploadFileSpec];

export function uploadRoutes(deps: { config: Config; validations: ValidationService }): Router {
  const router = Router();
  const upload = multer({
    storage: multer.memoryStorage(),
    limits: {
      fileSize: deps.config.maxUploadBytes,
      files: 1,
      fields: 1,
      parts: 2,
      fieldSize: deps.config.maxTestPayloadsBytes,
      fieldNameSize: 100,
      headerPairs: 50,
    },
  });

  const checkRequest: RequestHandler = (req, res, next) => {
    const { file_name } = parse(FileNameQuery, req.query, 'file_name', 'invalid_file_name');
    if (!req.is('multipart/form-data')) throw new UnsupportedMediaTypeError('send the file as multipart/form-data (field "file")');
    // multer reads the body as sent: a compressed multipart body would be parsed as garbage.
    const encoding = (req.get('content-encoding') ?? 'identity').trim().toLowerCase();
    if (encoding !== 'identity')
      throw new UnsupportedMediaTypeError(
        `Content-Encoding ${JSON.stringify(encoding.slice(0, 32))} is not supported for uploads: send the multipart body uncompressed`,
        'unsupported_content_encoding',
      );
    res.locals.fileName = normalizeFileName(file_name);
    next();
  };

  mount(router, uploadFileSpec, checkRequest, upload.single('file'), async (req, res) => {
    const owner = ownerOf(res);
    const fileName = res.locals.fileName as string;
    const extra = Object.keys(req.body ?? {}).filter((k) => k !== 'test_payloads');
    if (extra.length) throw new BadRequestError(`unexpected form field ${JSON.stringify(extra[0])}`, 'unexpected_field');
    const file = req.file;
    if (!file) throw new BadRequestError('the multipart field "file" is missing', 'missing_file');
    const bytes = file.buffer;
    if (bytes.length === 0) throw new BadRequestError('the file is empty', 'empty_file');
    const type = (file.mimetype || 'application/octet-stream').split(';')[0].trim().toLowerCase();
    if (!TEXT_TYPES.has(type))
      throw new UnsupportedMediaTypeError(`a Python source file is expected, not ${type}`, 'unsupported_file_type');
    if (bytes.includes(0))
      throw new UnsupportedMediaTypeError('the file is binary (it contains NUL bytes); a Python source file is expected', 'binary_file');
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new UnprocessableError('the file is not valid UTF-8 text', 'not_utf8');
    }
    let testPayloads: unknown[] | undefined;
    const raw = (req.body as Record<string, unknown> | undefined)?.test_payloads;
    if (raw !== undefined) {
      let json: unknown;
      try {
        json = JSON.parse(String(raw));
      } catch {
        throw new BadRequestError('test_payloads is not valid JSON', 'invalid_test_payloads');
      }
      if (Array.isArray(json)) json.forEach((p, i) => assertDepth(p, deps.config.sandbox.limits.jsonMaxDepth, `test_payloads[${i}]`));
      testPayloads = parse(TestPayloads, json, 'test_payloads', 'invalid_test_payloads');
    }
    const accepted = await deps.validations.upload(owner, fileName, bytes, testPayloads);
    res.status(202).location(accepted.status_url).json(accepted);
  });
  return router;
}
