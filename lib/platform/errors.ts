/**
 * Every code the product's errors carry: a closed set, so that the HTTP layer can map each one to a
 * status in one table (`HTTP_STATUS` below) and a new code cannot go unmapped.
 */
export const ERROR_CODES = [
  'bad_request',
  'unauthorized',
  'not_found',
  'method_not_allowed',
  'conflict',
  'lease_lost',
  'payload_too_large',
  'unsupported_media_type',
  'poison_event',
  'not_configured',
  'read_timeout',
  'dispatch_incomplete',
  'token_regression',
  'data_source_corrupt',
  'data_source_missing',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * The HTTP status of every error code, in one table. 5xx means "try again" to QStash; 489 replaces
 * a 4xx for QStash deliveries (lib/qstash/receiver.ts).
 * The HTTP layer (lib/http/route.ts) renders errors with it; `AppError.status` reads it too.
 */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  unauthorized: 401,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  lease_lost: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  poison_event: 422,
  not_configured: 503,
  read_timeout: 503,
  dispatch_incomplete: 503,
  token_regression: 500,
  data_source_corrupt: 500,
  data_source_missing: 404,
  internal: 500,
};


/**
 * The product's error family. `instanceof` and `code` are the contract; messages are for people.
 * The HTTP status of each code is decided in one table, `HTTP_STATUS`.
 */
export class AppError extends Error {
  override readonly name: string = 'AppError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** The HTTP status this error renders as (`HTTP_STATUS`). */
  get status(): number {
    return HTTP_STATUS[this.code];
  }
}

/** The request is wrong; 4xx with a message that names the problem. */
export class BadRequestError extends AppError {
  override readonly name = 'BadRequestError';
  constructor(message: string, readonly details?: unknown) {
    super('bad_request', message);
  }
}

export class NotFoundError extends AppError {
  override readonly name = 'NotFoundError';
  constructor(message: string) {
    super('not_found', message);
  }
}

export class UnauthorizedError extends AppError {
  override readonly name = 'UnauthorizedError';
  constructor(message = 'missing or invalid credentials') {
    super('unauthorized', message);
  }
}

/** A route whose secret is not configured answers 503, never "open". */
export class NotConfiguredError extends AppError {
  override readonly name = 'NotConfiguredError';
  constructor(what: string) {
    super('not_configured', `${what} is not configured on this deployment`);
  }
}

export class ConflictError extends AppError {
  override readonly name = 'ConflictError';
  constructor(message: string) {
    super('conflict', message);
  }
}

/** The lease on a stream was taken by another invocation; this one must stop writing at once. */
export class LeaseLostError extends AppError {
  override readonly name = 'LeaseLostError';
  constructor(streamId: string) {
    super('lease_lost', `lease on stream ${streamId} was lost to another invocation`);
  }
}

/** An event that can never be dispatched (malformed, oversized); it is dead-lettered, not retried. */
export class PoisonEventError extends AppError {
  override readonly name = 'PoisonEventError';
  constructor(reason: string, options?: { cause?: unknown }) {
    super('poison_event', reason, options);
  }
}

/** A change-stream read that did not come back before the deadline (the driver kept resuming). */
export class ReadTimeoutError extends AppError {
  override readonly name = 'ReadTimeoutError';
  constructor(streamId: string) {
    super('read_timeout', `change stream read on ${streamId} did not return before the deadline`);
  }
}

/** Deliberately ignored errors go through here, so that ignoring one is visible in the code. */
export function squashError(_error: unknown): void {
  return;
}
