/** A source of uniform random numbers in [0, 1); injectable so that tests can pin the jitter. */
export type RandomSource = () => number;

/**
 * Exponential backoff with "full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"):
 * a uniform draw in [0, min(capMs, baseMs · 2^exponent)), whole milliseconds. Many callers failing
 * together spread out instead of returning in waves. `exponent` counts from 0 (the first wait);
 * callers that count attempts from 1 pass `attempt - 1`. A draw outside [0, 1] is clamped, and
 * 2^exponent overflowing to Infinity is brought back to the cap by min().
 */
export function fullJitterMs(exponent: number, baseMs: number, capMs: number, random: RandomSource = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, exponent));
  const draw = Math.min(Math.max(random(), 0), 1);
  return Math.floor(draw * ceiling);
}
