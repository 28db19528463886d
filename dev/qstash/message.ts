import { createHash } from 'node:crypto';
import { BadRequestError, NotFoundError } from './errors.js';
import { parseDuration } from './durations.js';
import { evaluateRetryDelay } from './expr.js';
import type { CallbackConfig, FlowControl, HttpMethod, MessageSpec } from './types.js';

const METHODS: readonly HttpMethod[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** Limits that differ per QStash plan; the server passes its own. */
export interface PublishLimits {
  /** Retries when `Upstash-Retries` is absent; QStash's default is 3. */
  defaultRetries: number;
  /** Highest accepted `Upstash-Retries`. */
  maxRetries: number;
  /** Attempt timeout when `Upstash-Timeout` is absent (the plan's max response duration). */
  maxTimeoutMs: number;
}

export interface PublishInput {
  destination: string;
  headers: Headers;
  body: Buffer;
  queueName?: string;
  nowMs: number;
  callerIp?: string;
}

/** A destination must be an absolute http(s) URL; anything else would be a URL group, which is not kept here. */
export function checkDestination(destination: string): string {
  let dest = destination;
  // Some clients percent-encode the whole destination; QStash accepts both forms.
  if (/^https?%3A/i.test(dest)) dest = decodeURIComponent(dest);
  if (!/^https?:\/\//i.test(dest)) {
    if (dest === '') throw new BadRequestError('destination is missing');
    throw new NotFoundError(`url group ${dest} not found (only URL destinations are supported)`);
  }
  try {
    new URL(dest);
  } catch {
    throw new BadRequestError(`invalid destination url: ${dest}`);
  }
  return dest;
}

function parseMethod(value: string | null, header: string): HttpMethod {
  const m = (value ?? 'POST').toUpperCase();
  if (!(METHODS as readonly string[]).includes(m)) throw new BadRequestError(`${header} must be one of ${METHODS.join(', ')}`);
  return m as HttpMethod;
}

function parseRetries(value: string | null, header: string, limits: PublishLimits): number | undefined {
  if (value === null) return undefined;
  if (!/^\d+$/.test(value.trim())) throw new BadRequestError(`${header} must be a non-negative integer`);
  const n = Number(value);
  if (n > limits.maxRetries) throw new BadRequestError(`${header} ${n} exceeds the maximum of ${limits.maxRetries}`);
  return n;
}

function parseDurationHeader(value: string | null, header: string): number | undefined {
  if (value === null) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined) throw new BadRequestError(`${header} is not a duration (e.g. 30s, 5m, 1d10h): ${value}`);
  return ms;
}

function checkRetryDelay(value: string | null, header: string): string | undefined {
  if (value === null) return undefined;
  try {
    evaluateRetryDelay(value, 0);
  } catch (err) {
    throw new BadRequestError(`${header} is not a valid expression: ${(err as Error).message}`);
  }
  return value;
}

/** Headers with `prefix` (lower-case), prefix removed; e.g. `upstash-forward-` → the delivered headers. */
function stripped(headers: Headers, prefix: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  headers.forEach((value, name) => {
    if (name.startsWith(prefix) && name.length > prefix.length) out.push([name.slice(prefix.length), value]);
  });
  return out;
}

function parseFlowControl(headers: Headers): FlowControl | undefined {
  const key = headers.get('upstash-flow-control-key');
  const value = headers.get('upstash-flow-control-value');
  if (key === null) return undefined;
  if (key.trim() === '') throw new BadRequestError('Upstash-Flow-Control-Key must not be empty');
  if (value === null) throw new BadRequestError('Upstash-Flow-Control-Value is required with Upstash-Flow-Control-Key');
  const fc: FlowControl = { key, periodMs: 1000 };
  for (const part of value.split(',')) {
    const [k, v] = part.split('=').map((s) => s.trim());
    if (!k || v === undefined) throw new BadRequestError(`Upstash-Flow-Control-Value: cannot read '${part.trim()}'`);
    if (k === 'parallelism' || k === 'rate') {
      if (!/^\d+$/.test(v) || Number(v) < 1) throw new BadRequestError(`Upstash-Flow-Control-Value: ${k} must be a positive integer`);
      fc[k] = Number(v);
    } else if (k === 'period') {
      const ms = parseDuration(v);
      if (ms === undefined || ms <= 0) throw new BadRequestError(`Upstash-Flow-Control-Value: period is not a duration: ${v}`);
      fc.periodMs = ms;
    } else {
      throw new BadRequestError(`Upstash-Flow-Control-Value: unknown setting '${k}'`);
    }
  }
  if (fc.parallelism === undefined && fc.rate === undefined) {
    throw new BadRequestError('Upstash-Flow-Control-Value needs parallelism or rate');
  }
  return fc;
}

function parseCallback(headers: Headers, name: 'callback' | 'failure-callback', limits: PublishLimits): CallbackConfig | undefined {
  const p = `upstash-${name}`;
  const url = headers.get(p);
  if (url === null) return undefined;
  const label = name === 'callback' ? 'Upstash-Callback' : 'Upstash-Failure-Callback';
  if (!/^https?(:|%3A)/i.test(url)) throw new BadRequestError(`${label} must be an http(s) URL`);
  const checked = checkDestination(url);
  const cfg: CallbackConfig = {
    url: checked,
    method: parseMethod(headers.get(`${p}-method`), `${label}-Method`),
    forwardHeaders: stripped(headers, `${p}-forward-`),
  };
  const retries = parseRetries(headers.get(`${p}-retries`), `${label}-Retries`, limits);
  if (retries !== undefined) cfg.retries = retries;
  const timeoutMs = parseDurationHeader(headers.get(`${p}-timeout`), `${label}-Timeout`);
  if (timeoutMs !== undefined) cfg.timeoutMs = timeoutMs;
  const delayMs = parseDurationHeader(headers.get(`${p}-delay`), `${label}-Delay`);
  if (delayMs !== undefined) cfg.delayMs = delayMs;
  const retryDelay = checkRetryDelay(headers.get(`${p}-retry-delay`), `${label}-Retry-Delay`);
  if (retryDelay !== undefined) cfg.retryDelay = retryDelay;
  return cfg;
}

/** Reads a publish/enqueue/batch entry into a message spec; throws BadRequestError naming the bad header. */
export function parsePublish(input: PublishInput, limits: PublishLimits): MessageSpec {
  const h = input.headers;
  const spec: MessageSpec = {
    kind: 'message',
    url: checkDestination(input.destination),
    method: parseMethod(h.get('upstash-method'), 'Upstash-Method'),
    body: input.body,
    forwardHeaders: stripped(h, 'upstash-forward-'),
    notBefore: input.nowMs,
    maxRetries: parseRetries(h.get('upstash-retries'), 'Upstash-Retries', limits) ?? limits.defaultRetries,
    timeoutMs: limits.maxTimeoutMs,
    labels: (h.get('upstash-label') ?? '').split(',').map((s) => s.trim()).filter(Boolean),
  };
  const contentType = h.get('content-type');
  if (contentType !== null) spec.contentType = contentType;
  if (input.queueName !== undefined) spec.queueName = input.queueName;
  if (input.callerIp !== undefined) spec.callerIp = input.callerIp;

  const notBefore = h.get('upstash-not-before');
  const delayMs = parseDurationHeader(h.get('upstash-delay'), 'Upstash-Delay');
  if (notBefore !== null) {
    // Not-Before (unix seconds) wins over Delay, as in QStash.
    if (!/^\d+$/.test(notBefore.trim())) throw new BadRequestError('Upstash-Not-Before must be unix seconds');
    spec.notBefore = Number(notBefore) * 1000;
  } else if (delayMs !== undefined) {
    spec.notBefore = input.nowMs + delayMs;
  }
  const timeoutMs = parseDurationHeader(h.get('upstash-timeout'), 'Upstash-Timeout');
  // Upstash-Timeout can only shorten the plan's limit.
  if (timeoutMs !== undefined) spec.timeoutMs = Math.min(timeoutMs, limits.maxTimeoutMs);
  const retryDelay = checkRetryDelay(h.get('upstash-retry-delay'), 'Upstash-Retry-Delay');
  if (retryDelay !== undefined) spec.retryDelay = retryDelay;
  const fc = parseFlowControl(h);
  if (fc) spec.flowControl = fc;
  const cb = parseCallback(h, 'callback', limits);
  if (cb) spec.callback = cb;
  const fcb = parseCallback(h, 'failure-callback', limits);
  if (fcb) spec.failureCallback = fcb;
  return spec;
}

/**
 * The deduplication key of a publish, if it asks for one: the explicit id, or for content-based
 * deduplication a hash of destination, body, content type and forwarded headers.
 */
export function dedupKey(headers: Headers, spec: MessageSpec): string | undefined {
  const id = headers.get('upstash-deduplication-id');
  if (id !== null && id !== '') return `id:${id}`;
  if (headers.get('upstash-content-based-deduplication')?.toLowerCase() !== 'true') return undefined;
  const forward = [...spec.forwardHeaders].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const hash = createHash('sha256');
  hash.update(JSON.stringify([spec.url, spec.contentType ?? '', forward]));
  hash.update(spec.body);
  return `content:${hash.digest('hex')}`;
}
