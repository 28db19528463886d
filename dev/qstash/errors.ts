/**
 * Errors of the local QStash server's HTTP API. Kept apart from the product's error family so this
 * program depends on nothing in lib/: each error carries the status QStash answers with and the
 * message goes to the client as `{"error": message}` (QStash's error body shape).
 */
export class ApiError extends Error {
  override readonly name: string = 'ApiError';
  constructor(
    readonly code: string,
    message: string,
    readonly status = 500,
  ) {
    super(message);
  }
}

export class BadRequestError extends ApiError {
  override readonly name = 'BadRequestError';
  constructor(message: string) {
    super('bad_request', message, 400);
  }
}

export class NotFoundError extends ApiError {
  override readonly name = 'NotFoundError';
  constructor(message: string) {
    super('not_found', message, 404);
  }
}

export class UnauthorizedError extends ApiError {
  override readonly name = 'UnauthorizedError';
  constructor(message = 'missing or invalid credentials') {
    super('unauthorized', message, 401);
  }
}
