import { describe, expect, it } from 'vitest';
import { NonRetryableStepError, RetryableStepError } from '../../lib/jobs/errors.js';
import { createStepRegistry, resolveSteps } from '../../lib/jobs/steps.js';
import { describeUrl, idempotencyKey, parseWebhookStep, statusError } from '../../lib/jobs/webhook.js';

const NOW = Date.UTC(2030, 0, 1);

function invalid(fn: () => unknown): NonRetryableStepError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(NonRetryableStepError);
    return error as NonRetryableStepError;
  }
  throw new Error('expected a NonRetryableStepError');
}

describe('webhook step definition', () => {
  it('accepts url and optional headers', () => {
    expect(parseWebhookStep({ type: 'webhook', url: 'https://example.com/h' })).toEqual({ type: 'webhook', url: 'https://example.com/h' });
    expect(parseWebhookStep({ type: 'webhook', url: 'http://127.0.0.1:9/h', headers: { Authorization: 'Bearer x' } }).headers).toEqual({ Authorization: 'Bearer x' });
  });

  it.each([
    ['missing url', { type: 'webhook' }, /url/],
    ['relative url', { type: 'webhook', url: '/hook' }, /url/],
    ['ftp url', { type: 'webhook', url: 'ftp://example.com/h' }, /http\(s\)/],
    ['url not a string', { type: 'webhook', url: 42 }, /url/],
    ['headers not an object', { type: 'webhook', url: 'https://e.com', headers: 'x' }, /headers/],
    ['bad header name', { type: 'webhook', url: 'https://e.com', headers: { 'Bad Name': 'x' } }, /not a valid header name/],
    ['header value with newline', { type: 'webhook', url: 'https://e.com', headers: { X: 'a\r\nInjected: 1' } }, /not allowed/],
    ['reserved header', { type: 'webhook', url: 'https://e.com', headers: { 'idempotency-key': 'mine' } }, /cannot be overridden/],
    ['signature header', { type: 'webhook', url: 'https://e.com', headers: { 'X-Webhook-Signature': 'forged' } }, /cannot be overridden/],
    ['non-string header value', { type: 'webhook', url: 'https://e.com', headers: { X: 1 } }, /headers/],
  ])('refuses %s as invalid_step', (_name, step, reason) => {
    const error = invalid(() => parseWebhookStep(step as never));
    expect(error.code).toBe('invalid_step');
    expect(error.message).toMatch(reason);
  });
});

describe('resolveSteps', () => {
  const registry = createStepRegistry({ noop: async () => {} });

  it('resolves every step in order', () => {
    const resolved = resolveSteps(registry, [{ type: 'noop' }, { type: 'webhook', url: 'https://e.com' }]);
    expect(resolved.map((r) => r.step.type)).toEqual(['noop', 'webhook']);
  });

  it('validates all steps before any runs: a malformed later step names its index', () => {
    const error = invalid(() => resolveSteps(registry, [{ type: 'noop' }, { type: 'webhook', url: 'nope' }]));
    expect(error.code).toBe('invalid_step');
    expect(error.message).toMatch(/^step 1 \(webhook\): malformed webhook step: url/);
  });

  it.each([
    ['not an array', { type: 'webhook' }, 'invalid_step', /no steps array/],
    ['a step without type', [{ url: 'x' }], 'invalid_step', /step 0: must be an object/],
    ['a null step', [null], 'invalid_step', /step 0/],
    ['an unknown type', [{ type: 'email' }], 'unknown_step_type', /unknown step type "email" \(registered: noop, webhook\)/],
  ])('refuses %s', (_name, steps, code, reason) => {
    const error = invalid(() => resolveSteps(registry, steps));
    expect(error.code).toBe(code);
    expect(error.message).toMatch(reason);
  });

  it('wraps a validator that throws something untyped', () => {
    const reg = createStepRegistry({ odd: { run: async () => {}, validate: () => { throw new Error('needs a "to" field'); } } });
    const error = invalid(() => resolveSteps(reg, [{ type: 'odd' }]));
    expect(error.message).toBe('step 0 (odd): needs a "to" field');
  });

  it('an empty step list resolves to nothing', () => {
    expect(resolveSteps(registry, [])).toEqual([]);
  });

  it('extra handlers can replace the built-in webhook', () => {
    const custom = async () => {};
    expect(createStepRegistry({ webhook: custom }).get('webhook')?.run).toBe(custom);
    expect(createStepRegistry().types()).toEqual(['webhook']);
  });
});

describe('statusError (how a non-2xx answer is retried)', () => {
  it.each([
    [500, null, 'webhook_server_error', undefined],
    [502, null, 'webhook_server_error', undefined],
    [503, '30', 'webhook_server_error', 30_000],
    [408, null, 'webhook_timeout', undefined],
    [429, '120', 'webhook_rate_limited', 120_000],
    [429, new Date(NOW + 10_000).toUTCString(), 'webhook_rate_limited', 10_000],
    [429, 'whenever', 'webhook_rate_limited', undefined],
  ])('%i (Retry-After %s) → retryable %s', (status, retryAfter, code, retryAfterMs) => {
    const error = statusError(status, retryAfter, NOW, 'http://r/hook', 'busy');
    expect(error).toBeInstanceOf(RetryableStepError);
    expect(error.code).toBe(code);
    expect((error as RetryableStepError).retryAfterMs).toBe(retryAfterMs);
    expect(error.message).toBe(`webhook http://r/hook answered ${status}: busy`);
  });

  it.each([
    [400, 'webhook_rejected'],
    [401, 'webhook_rejected'],
    [404, 'webhook_rejected'],
    [422, 'webhook_rejected'],
    [301, 'webhook_redirect'],
    [307, 'webhook_redirect'],
  ])('%i → non-retryable %s', (status, code) => {
    const error = statusError(status, '5', NOW, 'http://r/hook');
    expect(error).toBeInstanceOf(NonRetryableStepError);
    expect(error.code).toBe(code);
  });
});

describe('url and key formatting', () => {
  it('describeUrl drops query string and credentials', () => {
    expect(describeUrl('https://user:pw@example.com/hook?token=s3cret')).toBe('https://example.com/hook');
    expect(describeUrl('::')).toBe('(invalid url)');
  });
  it('idempotencyKey: the job key for the first step, suffixed for later ones', () => {
    expect(idempotencyKey('wf:sub:insert', 0)).toBe('wf:sub:insert');
    expect(idempotencyKey('wf:sub:insert', 2)).toBe('wf:sub:insert:step2');
  });
});
