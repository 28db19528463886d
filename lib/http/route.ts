import { AppError, BadRequestError, HTTP_STATUS } from '../platform/errors.js';
import { redact } from '../platform/redact.js';
import { stringifyJson } from '../data/bson-json.js';
import { ConfigError } from '../platform/config.js';
import { currentLogger } from '../platform/context.js';
import type { Logger } from '../platform/log.js';
import { ChallengeError } from './auth.js';

/**
 * Route plumbing shared by every handler in api/: the method table and the one error mapper
 * (authentication is in ./auth.ts, bodies in ./body.ts). Statuses come from the one table of
 * error codes, `HTTP_STATUS` in lib/platform/errors.ts.
 */


export const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

export type Method = (typeof METHODS)[number];

export type Handler = (request: Request) => Promise<Response>;

/**
 * Build the method exports of one route file. Every method is exported, so an unsupported one
 * answers 405 with `Allow` the same way on Vercel and locally; every handler goes through the
 * error mapper. Usage: `export const { GET, POST, PUT, PATCH, DELETE } = route({ POST: handler })`.
 */
export function route(handlers: Partial<Record<Method, Handler>>, logger: () => Promise<Logger> = currentLogger): Record<Method, Handler> {
  const allow = METHODS.filter((m) => handlers[m]).join(', ');
  const out = {} as Record<Method, Handler>;
  for (const method of METHODS) {
    const handler = handlers[method];
    out[method] = handler
      ? async (request) => {
          try {
            return await handler(request);
          } catch (error) {
            return errorResponse(error, await logger());
          }
        }
      : async () =>
          json(HTTP_STATUS.method_not_allowed, { error: { code: 'method_not_allowed', message: `method not allowed; use ${allow}` } }, { allow });
  }
  return out;
}

/** A JSON response; BSON values in `body` are written by the one mapping of lib/data/bson-json.ts, URL credentials redacted. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(redact(stringifyJson(body)), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers },
  });
}

/**
 * The one error mapper: a known AppError renders its own status and `{error: {code, message}}`;
 * anything else is logged and becomes a bare 500 that reveals nothing.
 */
export function errorResponse(error: unknown, log: Logger): Response {
  if (error instanceof AppError) {
    const status = HTTP_STATUS[error.code];
    if (status >= 500) log.error('request failed', { code: error.code, error });
    const details = error instanceof BadRequestError && error.details !== undefined ? { details: error.details } : {};
    const headers: Record<string, string> = error instanceof ChallengeError ? { 'www-authenticate': error.challenge } : {};
    return json(status, { error: { code: error.code, message: error.message, ...details } }, headers);
  }
  if (error instanceof ConfigError) {
    // The message names env variables and problems, never values; it goes to the log only.
    log.error('configuration is invalid', { error });
    return json(HTTP_STATUS.not_configured, { error: { code: 'not_configured', message: 'this deployment is not configured correctly' } });
  }
  log.error('unhandled error', { error });
  return json(HTTP_STATUS.internal, { error: { code: 'internal', message: 'internal error' } });
}
