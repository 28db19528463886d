/**
 * processJobs against the test database and a live receiver: the failure matrix of a webhook
 * receiver, dead-lettering, malformed steps, deadline discipline. Promises tried: every queued job
 * reaches a final state with the reason kept; an invocation ends by its deadline (DESIGN.md §8.4).
 */
import { describe, expect, it } from 'vitest';
import type { AppContext } from '../../lib/platform/context.js';
import { processJobs } from '../../lib/jobs/process.js';
import { createStepRegistry } from '../../lib/jobs/steps.js';
import { RetryableStepError } from '../../lib/jobs/errors.js';
import { useJobsHarness } from './support/harness.js';
import type { FakeClock } from './support/fake-clock.js';
import { allJobs, deferred, getJob, insertJobs, newJob } from './support/jobs.js';
import type { Receiver } from './support/receiver.js';

let receiver: Receiver;
let clock: FakeClock;
let ctx: AppContext;
const t = useJobsHarness('jobs_process', (h) => ({ receiver, clock, ctx } = h));

const webhook = () => [{ type: 'webhook', url: receiver.url }];
const now = () => new Date(clock.now());
const half = () => 0.5;

describe('processJobs: happy path', () => {
  it('runs every due job once, leaves future jobs queued, reports drained', async () => {
    const due = await insertJobs(t.db, [0, 1, 2].map((i) => newJob(i, webhook(), now())));
    const [future] = await insertJobs(t.db, [newJob(9, webhook(), new Date(clock.now() + 60_000))]);
    const summary = await processJobs(ctx, { concurrency: 2 });
    expect(summary).toMatchObject({ claimed: 3, succeeded: 3, retried: 0, dead: 0, lost: 0, stoppedBy: 'drained', moreDue: false });
    expect(summary.owner).toMatch(/^jobs:/);
    expect(receiver.hits.map((h) => h.key).sort()).toEqual(due.map((j) => j.key).sort());
    for (const job of due) {
      const stored = await getJob(t.db, job.key);
      expect(stored).toMatchObject({ status: 'succeeded', attempts: 1, lease: null, lastError: null });
      expect(stored.finishedAt).toEqual(now());
      expect(stored.startedAt).toEqual(now());
    }
    expect((await getJob(t.db, future!.key)).status).toBe('queued');
    expect(clock.pending).toBe(0); // every timer cancelled
  });

  it('reports moreDue when the window ends with due jobs left', async () => {
    await insertJobs(t.db, [newJob(0, webhook(), now())]);
    // 1 s window < min(WEBHOOK_TIMEOUT_MS, 2 s): too little time to start an attempt
    const summary = await processJobs(ctx, { windowMs: 1_000 });
    expect(summary).toMatchObject({ claimed: 0, stoppedBy: 'deadline', moreDue: true });
    expect(receiver.hits).toHaveLength(0);
  });
});

describe('processJobs: receiver failure matrix', () => {
  async function oneAttempt(behave: Receiver['behave']) {
    const [job] = await insertJobs(t.db, [newJob(0, webhook(), now())]);
    receiver.behave = behave;
    const summary = await processJobs(ctx, { random: half });
    return { summary, stored: await getJob(t.db, job!.key) };
  }

  it('500 → queued again after jittered backoff, error kept', async () => {
    const { summary, stored } = await oneAttempt(() => ({ status: 500, body: 'oops' }));
    expect(summary).toMatchObject({ claimed: 1, retried: 1, dead: 0 });
    expect(stored).toMatchObject({ status: 'queued', attempts: 1, lease: null });
    expect(stored.runAt).toEqual(new Date(clock.now() + 500)); // 0.5 × base 1 s
    expect(stored.lastError).toMatchObject({ code: 'webhook_server_error', retryable: true, message: `webhook ${receiver.url} answered 500: oops` });
  });

  it('429 + Retry-After → runAt honours Retry-After', async () => {
    const { stored } = await oneAttempt(() => ({ status: 429, headers: { 'Retry-After': '30' } }));
    expect(stored.status).toBe('queued');
    expect(stored.runAt).toEqual(new Date(clock.now() + 30_000));
    expect(stored.lastError?.code).toBe('webhook_rate_limited');
  });

  it('429 + Retry-After beyond the cap → capped at JOB_BACKOFF_MAX_MS', async () => {
    const { stored } = await oneAttempt(() => ({ status: 429, headers: { 'Retry-After': '86400' } }));
    expect(stored.runAt).toEqual(new Date(clock.now() + 60_000));
  });

  it('400 → dead at once, non-retryable', async () => {
    const { summary, stored } = await oneAttempt(() => ({ status: 400, body: 'missing email' }));
    expect(summary).toMatchObject({ dead: 1, retried: 0 });
    expect(stored).toMatchObject({ status: 'dead', attempts: 1, deadReason: 'non_retryable' });
    expect(stored.lastError).toMatchObject({ code: 'webhook_rejected', retryable: false });
    expect(stored.lastError?.message).toContain('answered 400: missing email');
    expect(stored.finishedAt).toEqual(now());
  });

  it('dropped connection → retried', async () => {
    const { stored } = await oneAttempt(() => 'destroy');
    expect(stored).toMatchObject({ status: 'queued', attempts: 1 });
    expect(stored.lastError?.code).toBe('webhook_network');
  });

  it('no answer within WEBHOOK_TIMEOUT_MS → retried as timeout', async () => {
    const [job] = await insertJobs(t.db, [newJob(0, webhook(), now())]);
    receiver.behave = () => 'hang';
    const running = processJobs(ctx, { random: half });
    await receiver.waitForHits(1);
    clock.advance(5_000);
    const summary = await running;
    expect(summary).toMatchObject({ retried: 1, stoppedBy: 'drained' });
    const stored = await getJob(t.db, job!.key);
    expect(stored.lastError?.code).toBe('webhook_timeout');
    expect(stored.runAt).toEqual(new Date(clock.now() + 500));
  });

  it('retryable failures until JOB_MAX_ATTEMPTS → dead; each attempt carries the same Idempotency-Key', async () => {
    const [job] = await insertJobs(t.db, [newJob(0, webhook(), now())]);
    receiver.behave = () => ({ status: 503 });
    for (let attempt = 1; attempt <= 3; attempt++) {
      const summary = await processJobs(ctx, { random: half });
      expect(summary.claimed).toBe(1);
      clock.advance(60_000); // past any backoff
    }
    const stored = await getJob(t.db, job!.key);
    expect(stored).toMatchObject({ status: 'dead', attempts: 3, deadReason: 'attempts_exhausted' });
    expect(stored.lastError?.message).toMatch(/answered 503 \(attempt 3 of 3; no attempts left\)$/);
    expect(receiver.hits.map((h) => [h.key, h.attempt])).toEqual([
      [job!.key, 1],
      [job!.key, 2],
      [job!.key, 3],
    ]);
    expect((await processJobs(ctx)).claimed).toBe(0); // dead jobs are never claimed
  });
});

describe('processJobs: malformed steps', () => {
  it('a malformed step sends its job to dead with a clear reason while the other jobs run', async () => {
    const good1 = newJob(1, webhook(), now());
    const badUrl = newJob(2, [{ type: 'webhook', url: 'ftp://example.com/x' }], now());
    const unknown = newJob(3, [{ type: 'email', to: 'x' }], now());
    const laterBad = newJob(4, [...webhook(), { type: 'webhook' }], now());
    const notArray = newJob(5, { type: 'webhook' } as never, now());
    const good2 = newJob(6, webhook(), now());
    await insertJobs(t.db, [good1, badUrl, unknown, laterBad, notArray, good2]);
    const summary = await processJobs(ctx);
    expect(summary).toMatchObject({ claimed: 6, succeeded: 2, dead: 4, retried: 0 });
    expect(receiver.hits.map((h) => h.key).sort()).toEqual([good1.key, good2.key].sort()); // nothing sent for a bad job
    const reason = async (key: string) => (await getJob(t.db, key)).lastError;
    expect(await reason(badUrl.key)).toMatchObject({ code: 'invalid_step', retryable: false, message: 'step 0 (webhook): malformed webhook step: url: url must be an absolute http(s) URL' });
    expect(await reason(unknown.key)).toMatchObject({ code: 'unknown_step_type', message: 'step 0: unknown step type "email" (registered: webhook)' });
    expect((await reason(laterBad.key))?.message).toMatch(/^step 1 \(webhook\): malformed webhook step: url/);
    expect((await reason(notArray.key))?.code).toBe('invalid_step');
    expect((await getJob(t.db, badUrl.key)).deadReason).toBe('non_retryable');
  });

  it('a job with no steps succeeds without sending anything', async () => {
    const [job] = await insertJobs(t.db, [newJob(0, [], now())]);
    expect((await processJobs(ctx)).succeeded).toBe(1);
    expect((await getJob(t.db, job!.key)).status).toBe('succeeded');
    expect(receiver.hits).toHaveLength(0);
  });
});

describe('processJobs: deadline discipline', () => {
  it('a request in flight at the deadline is aborted; the job is retried at once without backoff', async () => {
    const [job] = await insertJobs(t.db, [newJob(0, webhook(), now())]);
    ctx = await t.context(clock, { WEBHOOK_TIMEOUT_MS: '20000' });
    receiver.behave = () => 'hang';
    const running = processJobs(ctx, { windowMs: 10_000 });
    await receiver.waitForHits(1);
    clock.advance(10_000);
    const summary = await running;
    expect(summary).toMatchObject({ claimed: 1, retried: 1, stoppedBy: 'deadline', moreDue: true, durationMs: 10_000 });
    const stored = await getJob(t.db, job!.key);
    expect(stored).toMatchObject({ status: 'queued', attempts: 1 });
    expect(stored.runAt).toEqual(now());
    expect(stored.lastError).toMatchObject({ code: 'deadline', retryable: true });
  });

  it('a step handler that ignores its signal does not hold the invocation past the deadline', async () => {
    const started = deferred();
    const steps = createStepRegistry({ stuck: () => (started.resolve(), new Promise<void>(() => {})) });
    await insertJobs(t.db, [newJob(0, [{ type: 'stuck' }], now())]);
    const running = processJobs(ctx, { windowMs: 10_000, steps });
    await started.promise;
    clock.advance(10_000);
    expect(await running).toMatchObject({ stoppedBy: 'deadline', retried: 1 });
  });

  it('a step still running near the end of its lease is stopped before the lease expires', async () => {
    const [job] = await insertJobs(t.db, [newJob(0, webhook(), now())]);
    ctx = await t.context(clock, { WEBHOOK_TIMEOUT_MS: '60000' });
    receiver.behave = () => 'hang';
    const running = processJobs(ctx, { windowMs: 50_000 });
    await receiver.waitForHits(1);
    clock.advance(28_000); // lease 30 s minus a 2 s margin
    expect(await running).toMatchObject({ retried: 1 });
    expect((await getJob(t.db, job!.key)).lastError?.code).toBe('lease_expiring');
  });
});

describe('steps in order', () => {
  it('a retry resumes at the failed step; steps that succeeded are not repeated', async () => {
    let failNext = true;
    const calls: number[] = [];
    const steps = createStepRegistry({
      flaky: async (_step, { attempt }) => {
        calls.push(attempt);
        if (failNext) {
          failNext = false;
          throw new RetryableStepError('flaky_down', 'down for now');
        }
      },
    });
    const [job] = await insertJobs(t.db, [newJob(0, [...webhook(), { type: 'flaky' }], now())]);
    expect(await processJobs(ctx, { steps, random: half })).toMatchObject({ retried: 1 });
    expect((await getJob(t.db, job!.key)).completedSteps).toBe(1);
    clock.advance(1_000);
    expect(await processJobs(ctx, { steps })).toMatchObject({ succeeded: 1 });
    expect(receiver.hits).toHaveLength(1); // the webhook step ran once
    expect(calls).toEqual([1, 2]);
  });

  it('a custom step throwing a plain Error is retried as step_error', async () => {
    const steps = createStepRegistry({ boom: async () => { throw new Error('kaput'); } });
    const [job] = await insertJobs(t.db, [newJob(0, [{ type: 'boom' }], now())]);
    await processJobs(ctx, { steps });
    expect((await getJob(t.db, job!.key)).lastError).toMatchObject({ code: 'step_error', message: 'kaput', retryable: true });
  });
});

describe('processJobs runs due jobs only', () => {
  it('runs each due job once, named by its key', async () => {
    const [a, b] = await insertJobs(t.db, [newJob(0, webhook(), now()), newJob(1, webhook(), now())]);
    expect(await processJobs(ctx)).toMatchObject({ claimed: 2, succeeded: 2 });
    expect(await getJob(t.db, a!.key)).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(await getJob(t.db, b!.key)).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(receiver.hits.map((h) => h.key).sort()).toEqual([a!.key, b!.key].sort());
  });

  it('a job that is not due yet is not run', async () => {
    const [future] = await insertJobs(t.db, [newJob(0, webhook(), new Date(clock.now() + 5_000))]);
    expect(await processJobs(ctx)).toMatchObject({ claimed: 0, succeeded: 0 });
    expect(await getJob(t.db, future!.key)).toMatchObject({ status: 'queued', runAt: future!.runAt });
    expect(receiver.hits).toHaveLength(0);
    expect((await allJobs(t.db))[0]!.attempts).toBe(0);
  });
});
