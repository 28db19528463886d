/**
 * The product's error family. `instanceof` and `code` are the contract; messages are for people.
 * Each error knows the HTTP status it renders as, so routes map errors in one place (lib/http/route.ts).
 */
export class AppError extends Error {
  override readonly name: string = 'AppError';
  constructor(
    readonly code: string,
    message: string,
    readonly status = 500,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The request is wrong; 4xx with a message that names the problem. */
export class BadRequestError extends AppError {
  override readonly name = 'BadRequestError';
  constructor(message: string, readonly details?: unknown) {
    super('bad_request', message, 400);
  }
}

export class NotFoundError extends AppError {
  override readonly name = 'NotFoundError';
  constructor(message: string) {
    super('not_found', message, 404);
  }
}

export class UnauthorizedError extends AppError {
  override readonly name = 'UnauthorizedError';
  constructor(message = 'missing or invalid credentials') {
    super('unauthorized', message, 401);
  }
}

/** A route whose secret is not configured answers 503, never "open". */
export class NotConfiguredError extends AppError {
  override readonly name = 'NotConfiguredError';
  constructor(what: string) {
    super('not_configured', `${what} is not configured on this deployment`, 503);
  }
}

export class ConflictError extends AppError {
  override readonly name = 'ConflictError';
  constructor(message: string) {
    super('conflict', message, 409);
  }
}

/** The lease on a stream was taken by another invocation; this one must stop writing at once. */
export class LeaseLostError extends AppError {
  override readonly name = 'LeaseLostError';
  constructor(streamId: string) {
    super('lease_lost', `lease on stream ${streamId} was lost to another invocation`, 409);
  }
}

/** An event that can never be dispatched (malformed, oversized); it is dead-lettered, not retried. */
export class PoisonEventError extends AppError {
  override readonly name = 'PoisonEventError';
  constructor(reason: string, options?: { cause?: unknown }) {
    super('poison_event', reason, 422, options);
  }
}

/** A change-stream read that did not come back before the deadline (the driver kept resuming). */
export class ReadTimeoutError extends AppError {
  override readonly name = 'ReadTimeoutError';
  constructor(streamId: string) {
    super('read_timeout', `change stream read on ${streamId} did not return before the deadline`, 503);
  }
}

/** Deliberately ignored errors go through here, so that ignoring one is visible in the code. */
export function squashError(_error: unknown): void {
  return;
}
