import { fullJitterMs, type RandomSource } from '../platform/backoff.js';

export type { RandomSource };

export interface BackoffPolicy {
  /** JOB_BACKOFF_BASE_MS: the ceiling of the first retry's delay. */
  baseMs: number;
  /** JOB_BACKOFF_MAX_MS: no delay is ever longer, `Retry-After` included. */
  maxMs: number;
  /** Default `Math.random`. */
  random?: RandomSource;
}

/**
 * Delay before the retry that follows failed attempt `attempt` (1-based): "full jitter", a uniform
 * draw in [0, min(max, base * 2^(attempt-1))), so that many jobs failing together against one
 * receiver spread out instead of returning in waves. A `Retry-After` the receiver asked for wins
 * when it is longer, but never beyond the cap: a receiver cannot park a job for a day.
 */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy, retryAfterMs?: number): number {
  // Attempts count from 1, so the first retry waits up to base·2^0.
  const jittered = fullJitterMs(attempt - 1, policy.baseMs, policy.maxMs, policy.random);
  const asked = retryAfterMs !== undefined && Number.isFinite(retryAfterMs) ? Math.max(0, retryAfterMs) : 0;
  return Math.min(policy.maxMs, Math.max(jittered, asked));
}

/**
 * `Retry-After` as milliseconds from `nowMs`: either delay-seconds or an HTTP date.
 * Returns undefined when absent or unparseable; a date in the past means "now" (0).
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value == null) return undefined;
  const trimmed = value.trim();
  if (trimmed === '') return undefined;
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // Only the HTTP-date forms: anything Date.parse would accept (e.g. "5.5") must not sneak in as a date.
  if (!/[a-z]/i.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}
