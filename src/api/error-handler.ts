/**
 * The one translation of errors into HTTP answers: `{error: {code, message, ...details}}`.
 * AppErrors carry their status; multer's, body-parser's and storage's errors are mapped here; a
 * client that went away gets no answer and a warning; anything else is logged and answered with a
 * generic 500 (never a stack trace or an internal message).
 */
import type { ErrorRequestHandler, Request } from 'express';
import multer from 'multer';
import { AppError, BadRequestError, PayloadTooLargeError, ServiceUnavailableError, UnsupportedMediaTypeError } from '../errors';
import type { Logger } from '../logger';
import { isDatabaseUnavailable } from '../db';

function fromMulter(err: multer.MulterError): AppError {
  switch (err.code) {
    case 'LIMIT_FILE_SIZE':
      return new PayloadTooLargeError('the file is larger than the upload limit', 'file_too_large');
    case 'LIMIT_FIELD_VALUE':
      return new PayloadTooLargeError(`the form field ${err.field ?? ''} is too large`.replace('  ', ' '), 'field_too_large');
    case 'LIMIT_UNEXPECTED_FILE':
      return new BadRequestError(
        `unexpected file field ${JSON.stringify(err.field ?? '')}: send the file in the multipart field "file"`,
        'unexpected_field',
      );
    default:
      return new BadRequestError(`malformed multipart upload (${err.code})`, 'bad_multipart');
  }
}

/** body-parser (express.json) marks its errors with `type` and `status`. */
function fromBodyParser(err: { type?: unknown; status?: unknown; code?: unknown; errno?: unknown }): AppError | undefined {
  // A body that does not decompress (Content-Encoding gzip/deflate/br): zlib's own error, passed on as a 400.
  if (typeof err.errno === 'number' && typeof err.code === 'string' && /^(Z_|ERR__)/.test(err.code)) {
    return new BadRequestError('the request body does not decode with its Content-Encoding', 'bad_content_encoding');
  }
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

/** The client closed the connection before its request was read (an aborted upload, a dropped body). */
function clientWentAway(req: Request, err: unknown): boolean {
  const e = err as { type?: unknown; message?: unknown; code?: unknown };
  const abortError =
    e?.type === 'request.aborted' || e?.message === 'Request aborted' || e?.message === 'Request closed' || e?.code === 'ECONNRESET';
  return abortError && (req.destroyed || !req.complete);
}

export function errorHandler(log: Logger): ErrorRequestHandler {
  const answered = new WeakSet<Request>();
  return (err, req, res, next) => {
    if (res.headersSent) return next(err);
    if (clientWentAway(req, err)) {
      // Nobody to answer, and nothing wrong on our side: one warning, not an error per event.
      if (!answered.has(req)) log.warn('client aborted the request', { method: req.method, path: req.path });
      answered.add(req);
      return;
    }
    let app: AppError | undefined;
    if (err instanceof AppError) app = err;
    else if (err instanceof multer.MulterError) app = fromMulter(err);
    else if (isDatabaseUnavailable(err)) {
      log.error('the database is unavailable', { method: req.method, path: req.path, error: (err as Error).message });
      app = new ServiceUnavailableError('the database is unavailable; try again shortly', 'database_unavailable');
    } else if (err && typeof err === 'object') app = fromBodyParser(err) ?? (err instanceof Error ? fromBusboy(err) : undefined);
    if (!app) {
      log.error('unhandled error', { method: req.method, path: req.path, error: err as Error });
      res.locals.errorCode = 'internal_error'; // for the request metrics (http-metrics.ts)
      res.status(500).json({ error: { code: 'internal_error', message: 'internal server error' } });
      return;
    }
    if (app.status >= 500) log.warn('request failed', { method: req.method, path: req.path, status: app.status, code: app.code });
    if (app.headers) res.set(app.headers);
    res.locals.errorCode = app.code;
    res.status(app.status).json({ error: { ...(app.details ?? {}), code: app.code, message: app.message } });
  };
}
