/**
 * Time arithmetic of QStash: duration strings in headers, the default retry backoff, and the
 * `Retry-After` family on destination responses. All results are milliseconds.
 */

const DAY_MS = 86_400_000;

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: DAY_MS,
};

/**
 * Parses `50s`, `5m`, `1d10h30m`, `1.5h`, `300ms` (Go-style, plus `d`). A bare number means seconds.
 * Returns undefined when the text is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)/gy;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = re.lastIndex;
  }
  return total;
}

/** QStash's default backoff before retry number `n` (1 for the first retry): min(86400, e^(2.5n)) seconds. */
export function defaultBackoffMs(n: number): number {
  return Math.min(86_400, Math.exp(2.5 * n)) * 1000;
}

/** Response headers that schedule the next retry, in the order they are consulted. */
export const RETRY_AFTER_HEADERS = ['retry-after', 'x-ratelimit-reset', 'x-ratelimit-reset-requests', 'x-ratelimit-reset-tokens'];

/**
 * Reads the retry delay a destination asked for: seconds, an HTTP date, or a Go duration (`6m5s`).
 * Values beyond one day are ignored (the default formula applies), as QStash does; `0` means now.
 */
export function retryAfterMs(headers: Headers, nowMs: number): number | undefined {
  for (const name of RETRY_AFTER_HEADERS) {
    const raw = headers.get(name);
    if (raw === null) continue;
    const ms = parseRetryAfterValue(raw, nowMs);
    if (ms === undefined) continue;
    return ms > DAY_MS ? undefined : ms;
  }
  return undefined;
}

function parseRetryAfterValue(raw: string, nowMs: number): number | undefined {
  const v = raw.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const d = parseDuration(v);
  if (d !== undefined) return d;
  // Only accept something that looks like an HTTP date, not any string Date.parse tolerates.
  if (/[A-Za-z]{3},? /.test(v)) {
    const at = Date.parse(v);
    if (!Number.isNaN(at)) return Math.max(0, at - nowMs);
  }
  return undefined;
}
