import { describe, expect, it } from 'vitest';
import { DedupWindow } from '../dedup.js';
import { defaultBackoffMs, parseDuration, retryAfterMs } from '../durations.js';
import { evaluateRetryDelay } from '../expr.js';
import { bodyHash } from '../keys.js';
import { dedupKey, parsePublish, type PublishLimits } from '../message.js';
import { BadRequestError, NotFoundError } from '../errors.js';

const limits: PublishLimits = { defaultRetries: 3, maxRetries: 20, maxTimeoutMs: 900_000 };
const NOW = 1_700_000_000_000;
const publish = (headers: Record<string, string>, destination = 'https://app.example/api/drain') =>
  parsePublish({ destination, headers: new Headers(headers), body: Buffer.from('{}'), nowMs: NOW }, limits);

describe('parseDuration', () => {
  it.each([
    ['50s', 50_000],
    ['5m', 300_000],
    ['1d10h30m', 86_400_000 + 36_000_000 + 1_800_000],
    ['1.5h', 5_400_000],
    ['300ms', 300],
    ['6m5s', 365_000],
    ['10', 10_000],
  ])('%s → %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));
  it.each(['', 'soon', '5x', 's', '5m garbage', '-5s'])('%j is not a duration', (text) => expect(parseDuration(text)).toBeUndefined());
});

describe('defaultBackoffMs', () => {
  it('follows min(86400, e^(2.5n)) seconds', () => {
    expect(defaultBackoffMs(1)).toBeCloseTo(12_182.49, 1);
    expect(defaultBackoffMs(2)).toBeCloseTo(148_413.16, 1);
    expect(defaultBackoffMs(3)).toBeCloseTo(1_808_042.41, 1);
    expect(defaultBackoffMs(4)).toBeCloseTo(22_026_465.79, 1);
    expect(defaultBackoffMs(5)).toBe(86_400_000);
    expect(defaultBackoffMs(20)).toBe(86_400_000);
  });
});

describe('retryAfterMs', () => {
  const h = (o: Record<string, string>) => new Headers(o);
  it('reads seconds, 0, Go durations and HTTP dates', () => {
    expect(retryAfterMs(h({ 'Retry-After': '30' }), NOW)).toBe(30_000);
    expect(retryAfterMs(h({ 'Retry-After': '0' }), NOW)).toBe(0);
    expect(retryAfterMs(h({ 'X-RateLimit-Reset': '6m5s' }), NOW)).toBe(365_000);
    expect(retryAfterMs(h({ 'Retry-After': new Date(NOW + 90_000).toUTCString() }), NOW)).toBe(90_000);
  });
  it('prefers Retry-After, then the X-RateLimit-Reset family', () => {
    expect(retryAfterMs(h({ 'X-RateLimit-Reset-Tokens': '9', 'Retry-After': '2' }), NOW)).toBe(2000);
    expect(retryAfterMs(h({ 'X-RateLimit-Reset-Tokens': '9', 'X-RateLimit-Reset-Requests': '4' }), NOW)).toBe(4000);
  });
  it('ignores values beyond one day and unreadable values (the default formula applies)', () => {
    expect(retryAfterMs(h({ 'Retry-After': '86401' }), NOW)).toBeUndefined();
    expect(retryAfterMs(h({ 'Retry-After': 'later' }), NOW)).toBeUndefined();
    expect(retryAfterMs(h({}), NOW)).toBeUndefined();
  });
});

describe('evaluateRetryDelay', () => {
  it.each([
    ['pow(2, retried) * 1000', 3, 8000],
    ['1000', 0, 1000],
    ['min(max(retried * 100, 50), 250)', 1, 100],
    ['min(max(retried * 100, 50), 250)', 9, 250],
    ['sqrt(16) + abs(-2) + floor(1.7) + ceil(1.2) + round(2.5)', 0, 4 + 2 + 1 + 2 + 3],
    ['exp(0) * (10 - 4) / 2 % 2', 0, 1],
    ['-5', 0, 0],
  ])('%s with retried=%d → %d', (expr, retried, ms) => expect(evaluateRetryDelay(expr, retried)).toBe(ms));
  it.each(['pow(2, retried', 'foo(1)', 'x', '1 +', '2 ** 3', 'process.exit()', '1/0', 'pow(2)'])('%j is refused', (expr) =>
    expect(() => evaluateRetryDelay(expr, 1)).toThrow(),
  );
});

describe('parsePublish', () => {
  it('applies QStash defaults', () => {
    const spec = publish({});
    expect(spec).toMatchObject({ method: 'POST', maxRetries: 3, timeoutMs: 900_000, notBefore: NOW, forwardHeaders: [], labels: [] });
    expect(spec.flowControl).toBeUndefined();
  });
  it('strips Upstash-Forward- and leaves other Upstash- headers out of the delivery', () => {
    const spec = publish({ 'Upstash-Forward-Authorization': 'Bearer x', 'Upstash-Forward-X-A': '1', 'Upstash-Retries': '2', 'X-Not-Forwarded': 'n' });
    expect(Object.fromEntries(spec.forwardHeaders)).toEqual({ authorization: 'Bearer x', 'x-a': '1' });
  });
  it('Not-Before wins over Delay; Delay is relative to now', () => {
    expect(publish({ 'Upstash-Delay': '5m' }).notBefore).toBe(NOW + 300_000);
    expect(publish({ 'Upstash-Delay': '5m', 'Upstash-Not-Before': '1800000000' }).notBefore).toBe(1_800_000_000_000);
  });
  it('Upstash-Timeout can only shorten the limit', () => {
    expect(publish({ 'Upstash-Timeout': '30s' }).timeoutMs).toBe(30_000);
    expect(publish({ 'Upstash-Timeout': '5h' }).timeoutMs).toBe(900_000);
  });
  it('reads flow control as the SDK writes it', () => {
    expect(publish({ 'Upstash-Flow-Control-Key': 'org-1', 'Upstash-Flow-Control-Value': 'parallelism=2, rate=5, period=1m' }).flowControl).toEqual({
      key: 'org-1',
      parallelism: 2,
      rate: 5,
      periodMs: 60_000,
    });
    expect(publish({ 'Upstash-Flow-Control-Key': 'k', 'Upstash-Flow-Control-Value': 'rate=3' }).flowControl).toEqual({ key: 'k', rate: 3, periodMs: 1000 });
  });
  it('reads callback settings', () => {
    const spec = publish({
      'Upstash-Callback': 'https://app.example/cb',
      'Upstash-Callback-Retries': '1',
      'Upstash-Callback-Method': 'PUT',
      'Upstash-Callback-Forward-X-Token': 't',
      'Upstash-Failure-Callback': 'https://app.example/fail',
    });
    expect(spec.callback).toEqual({ url: 'https://app.example/cb', method: 'PUT', retries: 1, forwardHeaders: [['x-token', 't']] });
    expect(spec.failureCallback).toEqual({ url: 'https://app.example/fail', method: 'POST', forwardHeaders: [] });
    expect(spec.forwardHeaders).toEqual([]);
  });
  it.each([
    [{ 'Upstash-Retries': '21' }, /maximum of 20/],
    [{ 'Upstash-Retries': '1.5' }, /Upstash-Retries/],
    [{ 'Upstash-Not-Before': 'tomorrow' }, /Upstash-Not-Before/],
    [{ 'Upstash-Flow-Control-Key': 'k', 'Upstash-Flow-Control-Value': 'burst=3' }, /unknown setting/],
    [{ 'Upstash-Flow-Control-Key': 'k', 'Upstash-Flow-Control-Value': 'period=1s' }, /parallelism or rate/],
    [{ 'Upstash-Callback': 'not a url' }, /Upstash-Callback must be an http\(s\) URL/],
    [{ 'Upstash-Failure-Callback': 'https://' }, /invalid destination/],
  ])('refuses %j', (headers, message) => expect(() => publish(headers)).toThrow(message));
  it('accepts a percent-encoded destination, and refuses a non-URL one as an unknown URL group', () => {
    expect(publish({}, 'https%3A%2F%2Fapp.example%2Fapi%3Fa%3D1').url).toBe('https://app.example/api?a=1');
    expect(() => publish({}, 'my-group')).toThrow(NotFoundError);
    expect(() => publish({}, '')).toThrow(BadRequestError);
    expect(() => publish({}, 'http://')).toThrow(BadRequestError);
  });
});

describe('deduplication', () => {
  const key = (headers: Record<string, string>, body = '{}') =>
    dedupKey(new Headers(headers), parsePublish({ destination: 'https://a.example/x', headers: new Headers(headers), body: Buffer.from(body), nowMs: NOW }, limits));
  it('uses the explicit id when given, else the content when asked, else nothing', () => {
    expect(key({ 'Upstash-Deduplication-Id': 'd1' })).toBe('id:d1');
    expect(key({})).toBeUndefined();
    const a = key({ 'Upstash-Content-Based-Deduplication': 'true', 'Upstash-Forward-A': '1', 'Upstash-Forward-B': '2' });
    expect(a).toBe(key({ 'Upstash-Content-Based-Deduplication': 'true', 'Upstash-Forward-B': '2', 'Upstash-Forward-A': '1' }));
    expect(a).not.toBe(key({ 'Upstash-Content-Based-Deduplication': 'true', 'Upstash-Forward-A': '1', 'Upstash-Forward-B': '3' }));
    expect(a).not.toBe(key({ 'Upstash-Content-Based-Deduplication': 'true', 'Upstash-Forward-A': '1', 'Upstash-Forward-B': '2' }, '{"x":1}'));
  });
  it('forgets a key after the window', () => {
    const w = new DedupWindow(600_000);
    w.remember('k', 'msg_1', NOW);
    expect(w.lookup('k', NOW + 599_999)).toBe('msg_1');
    expect(w.lookup('k', NOW + 600_000)).toBeUndefined();
  });
});

describe('bodyHash', () => {
  it('is base64url SHA-256 with padding, as in QStash tokens', () => {
    expect(bodyHash(Buffer.alloc(0))).toBe('47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=');
  });
});
