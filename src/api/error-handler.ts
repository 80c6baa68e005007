/**
 * The one translation of errors into HTTP answers: `{error: {code, message, ...details}}`.
 * AppErrors carry their status; multer's and body-parser's errors are mapped here; anything else
 * is logged and answered with a generic 500 (never a stack trace or an internal message).
 */
import type { ErrorRequestHandler } from 'express';
import multer from 'multer';
import { AppError, BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError } from '../errors';
import type { Logger } from '../logger';

function fromMulter(err: multer.MulterError): AppError {
  switch (err.code) {
    case 'LIMIT_FILE_SIZE':
      return new PayloadTooLargeError('the file is larger than the upload limit', 'file_too_large');
    case 'LIMIT_FIELD_VALUE':
      return new PayloadTooLargeError(`the form field ${err.field ?? ''} is too large`.replace('  ', ' '), 'field_too_large');
    case 'LIMIT_UNEXPECTED_FILE':
      return new BadRequestError(`unexpected file field ${JSON.stringify(err.field ?? '')}: send the file in the multipart field "file"`, 'unexpected_field');
    default:
      return new BadRequestError(`malformed multipart upload (${err.code})`, 'bad_multipart');
  }
}

/** body-parser (express.json) marks its errors with `type` and `status`. */
function fromBodyParser(err: { type?: unknown; status?: unknown }): AppError | undefined {
  switch (err.type) {
    case 'entity.too.large':
      return new PayloadTooLargeError('the request body is too large');
    case 'entity.parse.failed':
      return new BadRequestError('the request body is not valid JSON', 'invalid_json');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new UnsupportedMediaTypeError('unsupported request body encoding');
    default:
      return undefined;
  }
}

/** busboy's own errors (a truncated or malformed multipart body) arrive as plain Errors. */
function fromBusboy(err: Error): AppError | undefined {
  if (/^(Multipart: |Unexpected end of form|Malformed part header|Boundary not found)/.test(err.message)) {
    return new BadRequestError('malformed multipart upload', 'bad_multipart');
  }
  return undefined;
}

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) return next(err);
    let app: AppError | undefined;
    if (err instanceof AppError) app = err;
    else if (err instanceof multer.MulterError) app = fromMulter(err);
    else if (err && typeof err === 'object') app = fromBodyParser(err) ?? (err instanceof Error ? fromBusboy(err) : undefined);
    if (!app) {
      log.error('unhandled error', { method: req.method, path: req.path, error: err as Error });
      res.status(500).json({ error: { code: 'internal_error', message: 'internal server error' } });
      return;
    }
    if (app.status >= 500) log.warn('request failed', { method: req.method, path: req.path, status: app.status, code: app.code });
    res.status(app.status).json({ error: { ...(app.details ?? {}), code: app.code, message: app.message } });
  };
}
