import { createHmac, timingSafeEqual } from 'node:crypto';

/** Header carrying the webhook signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`. */
export const SIGNATURE_HEADER = 'X-Webhook-Signature';

/** Default tolerance between the signature's timestamp and the receiver's clock, in seconds. */
export const DEFAULT_TOLERANCE_S = 300;

type SecretLike = string | { reveal(): string };

function secretValue(secret: SecretLike): string {
  return typeof secret === 'string' ? secret : secret.reveal();
}

function hmacHex(secret: string, timestampS: number, rawBody: string | Uint8Array): string {
  // Signed content is `${t}.${rawBody}`: binding the timestamp stops a captured request from being
  // replayed later with a fresh `t`.
  return createHmac('sha256', secret).update(`${timestampS}.`).update(rawBody).digest('hex');
}

/** The header value for `rawBody` sent at `timestampS` (unix seconds). */
export function signWebhook(secret: SecretLike, timestampS: number, rawBody: string | Uint8Array): string {
  return `t=${timestampS},v1=${hmacHex(secretValue(secret), timestampS, rawBody)}`;
}

/**
 * For receivers: true when `header` carries a `v1` signature of `rawBody` under `secret` whose
 * timestamp is within `toleranceS` of `nowSeconds`. Several `v1=` entries are accepted (any may
 * match), so that a sender can sign with an old and a new secret while the secret is rotated.
 * `rawBody` must be the bytes as received, before any JSON parsing.
 */
export function verifyWebhookSignature(
  secret: SecretLike,
  header: string | null | undefined,
  rawBody: string | Uint8Array,
  nowSeconds: number,
  toleranceS: number = DEFAULT_TOLERANCE_S,
): boolean {
  if (!header) return false;
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (name === 't' && /^\d+$/.test(value)) timestamp = Number(value);
    else if (name === 'v1' && /^[0-9a-f]{64}$/i.test(value)) signatures.push(value.toLowerCase());
  }
  if (timestamp === undefined || signatures.length === 0) return false;
  if (Math.abs(nowSeconds - timestamp) > toleranceS) return false;
  const expected = Buffer.from(hmacHex(secretValue(secret), timestamp, rawBody), 'hex');
  // Constant-time comparison: the lengths are equal by construction (64 hex digits).
  return signatures.some((sig) => timingSafeEqual(Buffer.from(sig, 'hex'), expected));
}
