import { ObjectId } from 'mongodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../lib/platform/log.js';
import { NonRetryableStepError, RetryableStepError } from '../../lib/jobs/errors.js';
import { verifyWebhookSignature } from '../../lib/jobs/signature.js';
import type { StepContext } from '../../lib/jobs/steps.js';
import type { ProcessedJobDoc } from '../../lib/data/documents.js';
import { webhookStep } from '../../lib/jobs/webhook.js';
import { jobsConfig } from './support/config.js';
import { FakeClock } from './support/fake-clock.js';
import { startReceiver, type Receiver } from './support/receiver.js';

let receiver: Receiver;
beforeAll(async () => {
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver.close();
});
beforeEach(() => {
  receiver.hits.length = 0;
  receiver.behave = () => ({ status: 200 });
});

function job(overrides: Partial<ProcessedJobDoc> = {}): ProcessedJobDoc {
  const createdAt = new Date(Date.UTC(2030, 0, 1, 11, 59));
  return {
    _id: new ObjectId(),
    key: 'wf1:sub1:insert',
    organizationId: 'acme',
    workflowId: 'wf1',
    workflowName: 'Notify CRM',
    formId: 'form1',
    submissionId: 'sub1',
    source: 'org:acme',
    event: 'insert',
    createdBy: 'change_stream',
    seenBy: ['change_stream'],
    status: 'running',
    attempts: 2,
    runAt: createdAt,
    lease: null,
    lastError: null,
    steps: [],
    submission: { _id: 'sub1', organizationId: 'acme', formId: 'form1', data: { email: 'a@example.com' } },
    eventClusterTime: null,
    eventWallTime: null,
    createdAt,
    updatedAt: createdAt,
    ...overrides,
  };
}

function context(clock: FakeClock, env: Record<string, string> = {}, over: Partial<StepContext> = {}): StepContext {
  return {
    job: job(),
    attempt: 2,
    stepIndex: 0,
    signal: new AbortController().signal,
    fetch: globalThis.fetch,
    clock,
    config: jobsConfig(env),
    log: silentLogger,
    ...over,
  };
}

async function failure(promise: Promise<void>): Promise<RetryableStepError | NonRetryableStepError> {
  try {
    await promise;
  } catch (error) {
    return error as RetryableStepError | NonRetryableStepError;
  }
  throw new Error('expected the step to fail');
}

describe('webhook step against a live receiver', () => {
  it('POSTs the job and submission with Idempotency-Key and a verifiable signature', async () => {
    const clock = new FakeClock();
    const ctx = context(clock);
    await webhookStep.run({ type: 'webhook', url: `${receiver.url}?token=abc`, headers: { 'X-Tenant': 'acme' } }, ctx);
    expect(receiver.hits).toHaveLength(1);
    const hit = receiver.hits[0]!;
    expect(hit.method).toBe('POST');
    expect(hit.path).toBe('/hook?token=abc');
    expect(hit.headers['content-type']).toBe('application/json');
    expect(hit.headers['idempotency-key']).toBe('wf1:sub1:insert');
    expect(hit.headers['x-tenant']).toBe('acme');
    expect(hit.body).toEqual({
      job: {
        key: 'wf1:sub1:insert',
        id: String(ctx.job._id),
        attempt: 2,
        organizationId: 'acme',
        workflowId: 'wf1',
        workflowName: 'Notify CRM',
        formId: 'form1',
        submissionId: 'sub1',
        event: 'insert',
        createdAt: '2030-01-01T11:59:00.000Z',
      },
      submission: { _id: 'sub1', organizationId: 'acme', formId: 'form1', data: { email: 'a@example.com' } },
    });
    const header = hit.headers['x-webhook-signature'] as string;
    const nowS = Math.floor(clock.now() / 1000);
    expect(header).toMatch(new RegExp(`^t=${nowS},v1=[0-9a-f]{64}$`));
    expect(verifyWebhookSignature('whsec_test_secret', header, hit.rawBody, nowS)).toBe(true);
    expect(verifyWebhookSignature('whsec_other', header, hit.rawBody, nowS)).toBe(false);
    expect(clock.pending).toBe(0); // the request timer was cancelled
  });

  it('sends no signature header when WEBHOOK_SIGNING_SECRET is unset', async () => {
    const ctx = context(new FakeClock(), { WEBHOOK_SIGNING_SECRET: '' });
    await webhookStep.run({ type: 'webhook', url: receiver.url }, ctx);
    expect(receiver.hits[0]!.headers['x-webhook-signature']).toBeUndefined();
    expect(receiver.hits[0]!.headers['idempotency-key']).toBe('wf1:sub1:insert');
  });

  it('later steps get a step-suffixed Idempotency-Key', async () => {
    await webhookStep.run({ type: 'webhook', url: receiver.url }, context(new FakeClock(), {}, { stepIndex: 1 }));
    expect(receiver.hits[0]!.key).toBe('wf1:sub1:insert:step1');
  });

  it('500 → retryable with a snippet of the answer, never the query string', async () => {
    receiver.behave = () => ({ status: 500, body: 'database\nunavailable' });
    const error = await failure(webhookStep.run({ type: 'webhook', url: `${receiver.url}?token=s3cret` }, context(new FakeClock())));
    expect(error).toBeInstanceOf(RetryableStepError);
    expect(error.code).toBe('webhook_server_error');
    expect(error.message).toBe(`webhook ${receiver.url} answered 500: database unavailable`);
    expect(error.message).not.toContain('s3cret');
  });

  it('429 + Retry-After → retryable with retryAfterMs', async () => {
    receiver.behave = () => ({ status: 429, headers: { 'Retry-After': '42' } });
    const error = await failure(webhookStep.run({ type: 'webhook', url: receiver.url }, context(new FakeClock())));
    expect(error).toBeInstanceOf(RetryableStepError);
    expect((error as RetryableStepError).retryAfterMs).toBe(42_000);
  });

  it('400 → non-retryable', async () => {
    receiver.behave = () => ({ status: 400, body: '{"error":"unknown field"}' });
    const error = await failure(webhookStep.run({ type: 'webhook', url: receiver.url }, context(new FakeClock())));
    expect(error).toBeInstanceOf(NonRetryableStepError);
    expect(error.code).toBe('webhook_rejected');
    expect(error.message).toContain('answered 400: {"error":"unknown field"}');
  });

  it('a redirect is not followed → non-retryable', async () => {
    receiver.behave = () => ({ status: 302, headers: { Location: '/elsewhere' } });
    const error = await failure(webhookStep.run({ type: 'webhook', url: receiver.url }, context(new FakeClock())));
    expect(error.code).toBe('webhook_redirect');
    expect(receiver.hits).toHaveLength(1);
  });

  it('dropped connection (socket destroyed) → retryable network error', async () => {
    receiver.behave = () => 'destroy';
    const error = await failure(webhookStep.run({ type: 'webhook', url: receiver.url }, context(new FakeClock())));
    expect(error).toBeInstanceOf(RetryableStepError);
    expect(error.code).toBe('webhook_network');
  });

  it('connection refused → retryable network error', async () => {
    const closed = await startReceiver();
    await closed.close();
    const error = await failure(webhookStep.run({ type: 'webhook', url: closed.url }, context(new FakeClock())));
    expect(error.code).toBe('webhook_network');
    expect(error.message).toMatch(/ECONNREFUSED/);
  });

  it('no answer within WEBHOOK_TIMEOUT_MS (on the injected clock) → retryable timeout', async () => {
    receiver.behave = () => 'hang';
    const clock = new FakeClock();
    const pending = failure(webhookStep.run({ type: 'webhook', url: receiver.url }, context(clock, { WEBHOOK_TIMEOUT_MS: '5000' })));
    await receiver.waitForHits(1);
    clock.advance(4_999);
    clock.advance(1);
    const error = await pending;
    expect(error).toBeInstanceOf(RetryableStepError);
    expect(error.code).toBe('webhook_timeout');
    expect(error.message).toMatch(/no answer within 5000 ms/);
  });

  it('the attempt signal aborts the request → retryable "aborted"', async () => {
    receiver.behave = () => 'hang';
    const stop = new AbortController();
    const pending = failure(webhookStep.run({ type: 'webhook', url: receiver.url }, context(new FakeClock(), {}, { signal: stop.signal })));
    await receiver.waitForHits(1);
    stop.abort(new Error('deadline'));
    const error = await pending;
    expect(error.code).toBe('aborted');
  });

  it('a malformed step is refused before any request', async () => {
    const error = await failure(webhookStep.run({ type: 'webhook', url: 'not a url' }, context(new FakeClock())));
    expect(error).toBeInstanceOf(NonRetryableStepError);
    expect(error.code).toBe('invalid_step');
    expect(receiver.hits).toHaveLength(0);
  });
});
