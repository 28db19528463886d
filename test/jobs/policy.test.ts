import { describe, expect, it } from 'vitest';
import { backoffDelayMs, parseRetryAfter } from '../../lib/jobs/backoff.js';
import { decideFailure, type RetryPolicy } from '../../lib/jobs/complete.js';
import { classifyStepError, NonRetryableStepError, RetryableStepError } from '../../lib/jobs/errors.js';
import { percentile } from '../../lib/jobs/metrics.js';

const base = { baseMs: 1_000, maxMs: 60_000 };
const top = () => 0.999999;
const zero = () => 0;

describe('backoffDelayMs (full jitter, capped)', () => {
  it.each([
    [1, 1_000],
    [2, 2_000],
    [3, 4_000],
    [6, 32_000],
    [7, 60_000], // 64s ceiling capped at 60s
    [1000, 60_000], // 2^999 overflows; still the cap
  ])('attempt %i: the draw stays below its ceiling %i', (attempt, ceiling) => {
    const high = backoffDelayMs(attempt, { ...base, random: top });
    expect(high).toBeLessThan(ceiling);
    expect(high).toBeGreaterThanOrEqual(ceiling - 1);
    expect(backoffDelayMs(attempt, { ...base, random: zero })).toBe(0);
  });

  it('spreads draws over [0, ceiling) with the injected random source', () => {
    expect(backoffDelayMs(3, { ...base, random: () => 0.5 })).toBe(2_000);
    expect(backoffDelayMs(3, { ...base, random: () => 0.25 })).toBe(1_000);
  });

  it('Retry-After wins when longer than the draw', () => {
    expect(backoffDelayMs(1, { ...base, random: zero }, 30_000)).toBe(30_000);
  });

  it('the draw wins when longer than Retry-After', () => {
    expect(backoffDelayMs(6, { ...base, random: top }, 5_000)).toBeGreaterThan(30_000);
  });

  it('Retry-After is capped by the maximum', () => {
    expect(backoffDelayMs(1, { ...base, random: zero }, 3_600_000)).toBe(60_000);
  });

  it('ignores a negative or non-finite Retry-After and a random source out of range', () => {
    expect(backoffDelayMs(1, { ...base, random: zero }, -5)).toBe(0);
    expect(backoffDelayMs(1, { ...base, random: zero }, Number.NaN)).toBe(0);
    expect(backoffDelayMs(1, { ...base, random: () => 7 })).toBe(1_000);
    expect(backoffDelayMs(1, { ...base, random: () => -1 })).toBe(0);
  });

  it('uses Math.random by default and stays within bounds', () => {
    for (let i = 0; i < 200; i++) {
      const d = backoffDelayMs(4, base);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(8_000);
    }
  });
});

describe('parseRetryAfter', () => {
  const now = Date.UTC(2030, 0, 1, 12, 0, 0);
  it.each([
    ['120', 120_000],
    ['0', 0],
    [' 7 ', 7_000],
    [new Date(now + 90_000).toUTCString(), 90_000],
    [new Date(now - 90_000).toUTCString(), 0], // a date in the past: retry now
  ])('%s → %i ms', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });

  it.each([null, undefined, '', 'soon', '-5', '1.5', '12abc'])('%s → undefined', (value) => {
    expect(parseRetryAfter(value, now)).toBeUndefined();
  });
});

describe('decideFailure', () => {
  const policy: RetryPolicy = { maxAttempts: 3, baseMs: 1_000, maxMs: 60_000, random: zero };
  const retryable = classifyStepError(new RetryableStepError('webhook_server_error', 'answered 500'));
  const fatal = classifyStepError(new NonRetryableStepError('webhook_rejected', 'answered 400'));

  it('retryable with attempts left → queued after backoff', () => {
    expect(decideFailure(1, retryable, { ...policy, random: top })).toEqual({ status: 'queued', delayMs: 999 });
  });
  it('retryable on the last attempt → dead, attempts exhausted', () => {
    expect(decideFailure(3, retryable, policy)).toEqual({ status: 'dead', reason: 'attempts_exhausted' });
  });
  it('non-retryable on the first attempt → dead at once', () => {
    expect(decideFailure(1, fatal, policy)).toEqual({ status: 'dead', reason: 'non_retryable' });
  });
  it('Retry-After from the step is honoured', () => {
    const limited = classifyStepError(new RetryableStepError('webhook_rate_limited', '429', { retryAfterMs: 45_000 }));
    expect(decideFailure(1, limited, policy)).toEqual({ status: 'queued', delayMs: 45_000 });
  });
  it('an attempt cut short by the processor retries immediately', () => {
    expect(decideFailure(2, retryable, { ...policy, random: top }, true)).toEqual({ status: 'queued', delayMs: 0 });
  });
});

describe('classifyStepError', () => {
  it('keeps code, retryability and Retry-After of typed errors', () => {
    expect(classifyStepError(new RetryableStepError('x', 'm', { retryAfterMs: 5 }))).toEqual({ code: 'x', message: 'm', retryable: true, retryAfterMs: 5 });
    expect(classifyStepError(new NonRetryableStepError('y', 'n'))).toEqual({ code: 'y', message: 'n', retryable: false, retryAfterMs: undefined });
  });
  it('treats anything else as retryable step_error', () => {
    expect(classifyStepError(new Error('boom'))).toMatchObject({ code: 'step_error', message: 'boom', retryable: true });
    expect(classifyStepError('text')).toMatchObject({ code: 'step_error', message: 'text', retryable: true });
  });
  it('truncates long messages', () => {
    expect(classifyStepError(new Error('x'.repeat(5_000))).message.length).toBe(500);
  });
});

describe('percentile (nearest rank)', () => {
  it('matrix', () => {
    expect(percentile([], 50)).toBeNull();
    expect(percentile([7], 95)).toBe(7);
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 95)).toBe(95);
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
  });
});
