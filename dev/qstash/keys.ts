import { createHash, randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';

/**
 * The public credentials of the QStash development server (user 1 of `qstash-cli dev`, also hard-coded in
 * `@upstash/qstash` as its dev credentials). They are not secrets: they only work against a local server.
 */
export const DEV_TOKEN = 'eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=';
export const DEV_CURRENT_SIGNING_KEY = 'sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r';
export const DEV_NEXT_SIGNING_KEY = 'sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs';

/** Lifetime of a delivery signature, as QStash issues them. */
export const SIGNATURE_TTL_SECONDS = 300;

const ID_ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

/** A random id in the style QStash uses (`msg_…`, `jwt_…`): prefix plus base58 characters. */
export function randomId(prefix: string, length = 32): string {
  const bytes = randomBytes(length);
  let out = prefix;
  for (const b of bytes) out += ID_ALPHABET[b % ID_ALPHABET.length];
  return out;
}

/** A fresh signing key in the `sig_…` format, for key rotation. */
export function newSigningKey(): string {
  return randomId('sig_', 28);
}

/**
 * SHA-256 of the raw body in the base64url alphabet, with `=` padding kept as in QStash's own tokens
 * (the Receiver strips padding on both sides, so either form verifies).
 */
export function bodyHash(body: Uint8Array): string {
  const b64 = createHash('sha256').update(body).digest('base64');
  return b64.replace(/\+/g, '-').replace(/\//g, '_');
}

export interface SignOptions {
  /** Signing key string; its UTF-8 bytes are the HMAC key (QStash does not decode it). */
  key: string;
  /** Exact destination URL; becomes `sub`, which the Receiver compares by string equality. */
  url: string;
  body: Uint8Array;
  /** Current time in epoch milliseconds. */
  nowMs: number;
  /** Lifetime in seconds; default 300. */
  ttlSeconds?: number;
}

/** The `Upstash-Signature` JWT: HS256, iss Upstash, sub = destination, iat/nbf = now, exp = now + 300 s, jti, body hash. */
export async function signDelivery(opts: SignOptions): Promise<string> {
  const now = Math.floor(opts.nowMs / 1000);
  return new SignJWT({ body: bodyHash(opts.body) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer('Upstash')
    .setSubject(opts.url)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + (opts.ttlSeconds ?? SIGNATURE_TTL_SECONDS))
    .setJti(randomId('jwt_', 24))
    .sign(new TextEncoder().encode(opts.key));
}
