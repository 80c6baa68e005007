/**
 * The one error tree of the HTTP surface. Code anywhere below the API throws these; one express
 * middleware (`src/api/error-handler.ts`) turns them into `{error: {code, message}}` answers.
 * Anything that is not an `AppError` is a bug or an outage and becomes a generic 500.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra fields merged into the `error` object of the answer (never secrets, never stacks). */
    readonly details?: Record<string, unknown>,
    /** HTTP headers the answer carries (Allow, Retry-After). */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class BadRequestError extends AppError {
  constructor(message: string, code = 'bad_request', details?: Record<string, unknown>) {
    super(400, code, message, details);
  }
}

export class UnauthorizedError extends AppError {
  constructor(message = 'a valid bearer token is required', code = 'unauthorized') {
    super(401, code, message);
  }
}

export class NotFoundError extends AppError {
  constructor(message = 'not found', code = 'not_found') {
    super(404, code, message);
  }
}

/** A known path asked with a method it does not support; `allow` becomes the Allow header. */
export class MethodNotAllowedError extends AppError {
  constructor(method: string, path: string, allow: string[]) {
    super(
      405,
      'method_not_allowed',
      `${method} is not supported on ${path} (allowed: ${allow.join(', ')})`,
      { allow },
      { Allow: allow.join(', ') },
    );
  }
}

export class ConflictError extends AppError {
  constructor(message: string, code = 'conflict') {
    super(409, code, message);
  }
}

export class PreconditionFailedError extends AppError {
  constructor(message: string, code = 'precondition_failed', details?: Record<string, unknown>) {
    super(412, code, message, details);
  }
}

export class PayloadTooLargeError extends AppError {
  constructor(message: string, code = 'payload_too_large') {
    super(413, code, message);
  }
}

export class UnsupportedMediaTypeError extends AppError {
  constructor(message: string, code = 'unsupported_media_type') {
    super(415, code, message);
  }
}

export class UnprocessableError extends AppError {
  constructor(message: string, code = 'unprocessable', details?: Record<string, unknown>) {
    super(422, code, message, details);
  }
}

/**
 * One of the owner's quotas or rate limits is used up (src/quotas/definitions.ts names them). The
 * refused request left nothing behind. The answer carries `Retry-After` (seconds) and names the limit.
 */
export class QuotaExceededError extends AppError {
  constructor(limit: string, max: number, retryAfterS: number, message: string) {
    super(429, 'quota_exceeded', message, { limit, max, retry_after_s: retryAfterS }, { 'Retry-After': String(retryAfterS) });
  }
}

/** A route whose machinery belongs to a later step (e.g. task execution before it is wired). */
export class NotImplementedError extends AppError {
  constructor(message: string, code = 'not_implemented') {
    super(501, code, message);
  }
}

/** How long a client should wait before retrying after a dependency did not answer (seconds). */
export const UNAVAILABLE_RETRY_AFTER_S = 5;

/** A dependency (Temporal, the database) did not answer. The request may be retried later (Retry-After). */
export class ServiceUnavailableError extends AppError {
  constructor(message: string, code = 'service_unavailable', details?: Record<string, unknown>) {
    super(503, code, message, details, { 'Retry-After': String(UNAVAILABLE_RETRY_AFTER_S) });
  }
}
