import { createHash, timingSafeEqual } from 'node:crypto';
import { Receiver } from '@upstash/qstash';
import type { z } from 'zod';
import { AppError, BadRequestError, NotConfiguredError, UnauthorizedError } from '../platform/errors.js';
import { ConfigError, type Config } from '../platform/config.js';
import { currentLogger } from '../platform/context.js';
import type { Logger } from '../platform/log.js';
import type { Secret } from '../platform/secret.js';

/**
 * Route plumbing shared by every handler in api/: method table, bearer auth, bounded body
 * reading, zod parsing, and the one error mapper. Handlers stay a few lines each.
 */

/** Largest request body any route accepts (bytes). Operator and QStash bodies are tiny. */
export const MAX_BODY_BYTES = 64 * 1024;

export class PayloadTooLargeError extends AppError {
  override readonly name = 'PayloadTooLargeError';
  constructor(limit: number) {
    super('payload_too_large', `request body exceeds ${limit} bytes`, 413);
  }
}

export class UnsupportedMediaTypeError extends AppError {
  override readonly name = 'UnsupportedMediaTypeError';
  constructor(got: string | null) {
    super('unsupported_media_type', `content-type must be application/json, got ${got ? JSON.stringify(got) : 'none'}`, 415);
  }
}

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
          json(405, { error: { code: 'method_not_allowed', message: `method not allowed; use ${allow}` } }, { allow });
  }
  return out;
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
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
    if (error.status >= 500) log.error('request failed', { code: error.code, error });
    const details = error instanceof BadRequestError && error.details !== undefined ? { details: error.details } : {};
    const headers: Record<string, string> = error instanceof ChallengeError ? { 'www-authenticate': error.challenge } : {};
    return json(error.status, { error: { code: error.code, message: error.message, ...details } }, headers);
  }
  if (error instanceof ConfigError) {
    // The message names env variables and problems, never values; it goes to the log only.
    log.error('configuration is invalid', { error });
    return json(503, { error: { code: 'not_configured', message: 'this deployment is not configured correctly' } });
  }
  log.error('unhandled error', { error });
  return json(500, { error: { code: 'internal', message: 'internal error' } });
}

/** Compare two secrets in constant time: equal-length digests, so length is not leaked either. */
export function safeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(request: Request): string | null {
  const header = request.headers.get('authorization');
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

/**
 * Require `Authorization: Bearer <secret>`. An unset secret closes the route (503), never opens it.
 * @param name the env variable, named in the 503 message (its value never is).
 */
export function requireBearer(request: Request, secret: Secret | undefined, name: string): void {
  if (!secret) throw new NotConfiguredError(name);
  const token = bearerToken(request);
  if (token === null || !safeEqual(token, secret.reveal())) throw new UnauthorizedError();
}

/** A 401 that asks the browser for credentials (the dashboard takes the admin token as a Basic password). */
export class ChallengeError extends UnauthorizedError {
  readonly challenge = 'Basic realm="stream-triggers admin", charset="UTF-8"';
}

/** The password of an `Authorization: Basic` header (any user name), or null. */
function basicPassword(request: Request): string | null {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(request.headers.get('authorization') ?? '');
  if (!match?.[1]) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? null : decoded.slice(colon + 1);
}

/**
 * Admin routes: `Authorization: Bearer $ADMIN_TOKEN`. With `basic`, a browser may also send the token
 * as the Basic-auth password, and a failed attempt gets a challenge, so the dashboard opens in a browser.
 */
export function requireAdmin(request: Request, config: Config, opts: { basic?: boolean } = {}): void {
  const secret = config.ADMIN_TOKEN;
  if (!secret) throw new NotConfiguredError('ADMIN_TOKEN');
  const given = bearerToken(request) ?? (opts.basic ? basicPassword(request) : null);
  if (given !== null && safeEqual(given, secret.reveal())) return;
  throw opts.basic ? new ChallengeError() : new UnauthorizedError();
}

/** An absolute URL of this deployment, as QStash addresses it (never derived from `request.url`). */
export function publicUrl(config: Config, path: string): string {
  if (!config.PUBLIC_BASE_URL) throw new NotConfiguredError('PUBLIC_BASE_URL');
  return config.PUBLIC_BASE_URL.replace(/\/+$/, '') + path;
}

/**
 * Verify an `Upstash-Signature` with the real QStash Receiver: the raw body, the destination URL
 * from configuration, current and next signing keys. Any failure is a 401.
 */
export async function verifyQStash(request: Request, rawBody: string, config: Config, path: string): Promise<void> {
  const signature = request.headers.get('upstash-signature');
  if (!signature) throw new UnauthorizedError('missing Upstash-Signature');
  const current = config.QSTASH_CURRENT_SIGNING_KEY;
  if (!current) throw new NotConfiguredError('QSTASH_CURRENT_SIGNING_KEY');
  const receiver = new Receiver({
    currentSigningKey: current.reveal(),
    // The Receiver wants both; without a next key the current one stands in (no rotation under way).
    nextSigningKey: (config.QSTASH_NEXT_SIGNING_KEY ?? current).reveal(),
    devMode: false,
  });
  try {
    await receiver.verify({ signature, body: rawBody, url: publicUrl(config, path) });
  } catch (error) {
    if (error instanceof AppError) throw error;
    throw new UnauthorizedError('invalid QStash signature');
  }
}

/**
 * Routes QStash calls: a valid QStash signature, or the cron bearer (operators, Vercel Cron).
 * A presented credential is checked even if the other kind would be valid. Neither configured → 503.
 */
export async function requireQStashOrCron(request: Request, rawBody: string, config: Config, path: string): Promise<'qstash' | 'cron'> {
  if (request.headers.has('upstash-signature')) {
    await verifyQStash(request, rawBody, config, path);
    return 'qstash';
  }
  if (request.headers.has('authorization') || !config.QSTASH_CURRENT_SIGNING_KEY) {
    requireBearer(request, config.CRON_SECRET, config.QSTASH_CURRENT_SIGNING_KEY ? 'CRON_SECRET' : 'CRON_SECRET or QSTASH_CURRENT_SIGNING_KEY');
    return 'cron';
  }
  throw new UnauthorizedError();
}

/**
 * For QStash deliveries a 4xx is still retried; a request that can never succeed (unknown stream, bad
 * body) answers 489 with `Upstash-NonRetryable-Error`, so it goes to the DLQ at once instead.
 */
export function nonRetryableForQStash(response: Response): Response {
  if (response.status < 400 || response.status >= 500 || response.status === 401) return response;
  const headers = new Headers(response.headers);
  headers.set('upstash-nonretryable-error', 'true');
  return new Response(response.body, { status: 489, headers });
}

/**
 * Read the raw body as text, refusing more than `maxBytes` (413) whether or not the client sent a
 * Content-Length. The raw text is what QStash signature verification hashes.
 */
export async function readRawBody(request: Request, maxBytes = MAX_BODY_BYTES): Promise<string> {
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) throw new PayloadTooLargeError(maxBytes);
  if (!request.body) return '';
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new PayloadTooLargeError(maxBytes);
    }
    chunks.push(value);
  }
  return new TextDecoder('utf-8', { fatal: false }).decode(Buffer.concat(chunks));
}

/** Refuse a body that is not JSON by its declared media type (415). */
export function requireJsonContentType(request: Request): void {
  const type = request.headers.get('content-type');
  const media = type?.split(';')[0]?.trim().toLowerCase() ?? '';
  if (media !== 'application/json' && !/^application\/[\w.+-]+\+json$/.test(media)) {
    throw new UnsupportedMediaTypeError(type);
  }
}

/** Parse raw JSON text against a schema; every problem is named in one 400. */
export function parseJsonText<S extends z.ZodType>(text: string, schema: S): z.output<S> {
  if (text.trim() === '') throw new BadRequestError('request body is empty; a JSON object is required');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new BadRequestError(`malformed JSON: ${(error as Error).message}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
    const text = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
    throw new BadRequestError(`invalid request body: ${text}`, issues);
  }
  return parsed.data;
}

/** Read and parse a JSON request body: size limit, media type, syntax, schema — in that order. */
export async function readJson<S extends z.ZodType>(request: Request, schema: S, maxBytes = MAX_BODY_BYTES): Promise<z.output<S>> {
  const text = await readRawBody(request, maxBytes);
  requireJsonContentType(request);
  return parseJsonText(text, schema);
}
