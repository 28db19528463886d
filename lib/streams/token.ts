import type { ResumeToken } from '../data/documents.js';

/**
 * A resume token's position in the oplog, as a fixed-width hex string that compares in order
 * (`t` seconds then `i` increment). mongod's `_data` is a KeyString that begins with the
 * Timestamp type byte 0x82 followed by the 8-byte timestamp, big-endian. Returns null for
 * tokens of any other shape: callers then skip order checks rather than guess.
 */
export function tokenPosition(token: ResumeToken | null | undefined): string | null {
  const data = (token as { _data?: unknown } | null | undefined)?._data;
  if (typeof data !== 'string' || data.length < 18 || !data.startsWith('82')) return null;
  const hex = data.slice(2, 18).toLowerCase();
  return /^[0-9a-f]{16}$/.test(hex) ? hex : null;
}

/** The cluster time (seconds precision) a token stands for, or null when it cannot be read. */
export function tokenTime(token: ResumeToken | null | undefined): Date | null {
  const pos = tokenPosition(token);
  if (!pos) return null;
  const seconds = Number.parseInt(pos.slice(0, 8), 16);
  return seconds > 0 ? new Date(seconds * 1000) : null;
}

/** A short stable digest of an event's identity, for job keys and dead-letter keys. */
export function tokenId(token: ResumeToken | null | undefined): string {
  const data = (token as { _data?: unknown } | null | undefined)?._data;
  return typeof data === 'string' ? data : JSON.stringify(token ?? null);
}
