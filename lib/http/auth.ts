import { createHash, timingSafeEqual } from 'node:crypto';
import { NotConfiguredError, UnauthorizedError } from '../platform/errors.js';
import { type Config } from '../platform/config.js';
import type { Secret } from '../platform/secret.js';
import { verifyQStash } from '../qstash/receiver.js';

/** Who may call a route: admin and cron bearers (constant-time compare), Basic for the dashboard, QStash signatures. */

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
export function requireBearer(request: Request, secret: Secret | undefined, name: string, expected = `Authorization: Bearer <${name}>`): void {
  if (!secret) throw new NotConfiguredError(name);
  const token = bearerToken(request);
  if (token === null || !safeEqual(token, secret.reveal())) throw new UnauthorizedError(credentialMessage(request, expected));
}

/**
 * The 401 message: which credential the route expects (by variable name, never its value) and
 * whether the request carried none or one that did not match.
 */
export function credentialMessage(request: Request, expected: string): string {
  const given = request.headers.get('authorization');
  const what = given === null ? 'no Authorization header was sent' : /^(Bearer|Basic)\s+\S/i.test(given) ? 'the credential sent does not match' : 'the Authorization header is malformed';
  return `this route expects ${expected}; ${what}`;
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
  const expected = `Authorization: Bearer <ADMIN_TOKEN>${opts.basic ? ' (or the ADMIN_TOKEN as the Basic password)' : ''}`;
  throw opts.basic ? new ChallengeError(credentialMessage(request, expected)) : new UnauthorizedError(credentialMessage(request, expected));
}

const QSTASH_OR_CRON = 'a QStash Upstash-Signature header or Authorization: Bearer <CRON_SECRET>';

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
    requireBearer(request, config.CRON_SECRET, config.QSTASH_CURRENT_SIGNING_KEY ? 'CRON_SECRET' : 'CRON_SECRET or QSTASH_CURRENT_SIGNING_KEY', QSTASH_OR_CRON);
    return 'cron';
  }
  throw new UnauthorizedError(credentialMessage(request, QSTASH_OR_CRON));
}
