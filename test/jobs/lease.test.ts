/**
 * Leases and fencing. Promises tried: a processor that dies mid-job loses nothing (the job is
 * claimed again once its lease expires, and the receiver can deduplicate by Idempotency-Key); a
 * stale processor can never overwrite the result of a newer attempt; a job whose last attempt was
 * abandoned ends in `dead` instead of looping.
 */
import { describe, expect, it } from 'vitest';
import type { AppContext } from '../../lib/platform/context.js';
import { silentLogger } from '../../lib/platform/log.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { claimJob, deadAbandoned } from '../../lib/jobs/claim.js';
import { recordFailure, recordStepProgress, recordSuccess } from '../../lib/jobs/complete.js';
import { processJobs } from '../../lib/jobs/process.js';
import { retryPolicyFrom } from '../../lib/jobs/run.js';
import { webhookStep } from '../../lib/jobs/webhook.js';
import { useJobsHarness } from './support/harness.js';
import type { FakeClock } from './support/fake-clock.js';
import { getJob, insertJobs, newJob } from './support/jobs.js';
import type { Receiver } from './support/receiver.js';

let receiver: Receiver;
let clock: FakeClock;
let ctx: AppContext;
const LEASE_MS = 30_000;
const t = useJobsHarness('jobs_lease', (h) => ({ receiver, clock, ctx } = h));

const now = () => new Date(clock.now());
const claimOpts = (owner: string) => ({ owner, now: now(), leaseMs: LEASE_MS, maxAttempts: 3 });
const serverError = { code: 'webhook_server_error', message: 'answered 500', retryable: true, retryAfterMs: undefined };

describe('claim', () => {
  it('takes the earliest due job, sets the lease and increments attempts', async () => {
    const [later, earlier] = await insertJobs(t.db, [
      newJob(0, [], new Date(clock.now() - 1_000)),
      newJob(1, [], new Date(clock.now() - 5_000)),
    ]);
    const got = await claimJob(t.db, claimOpts('p1'));
    expect(got?.job.key).toBe(earlier!.key);
    expect(got?.claim).toMatchObject({ owner: 'p1', attempt: 1, reclaimed: false, leaseExpiresAt: new Date(clock.now() + LEASE_MS) });
    const stored = await getJob(t.db, earlier!.key);
    expect(stored).toMatchObject({ status: 'running', attempts: 1, startedAt: now() });
    expect(stored.lease).toEqual({ owner: 'p1', expiresAt: new Date(clock.now() + LEASE_MS), token: got!.claim.token });
    expect((await claimJob(t.db, claimOpts('p2')))?.job.key).toBe(later!.key);
    expect(await claimJob(t.db, claimOpts('p3'))).toBeNull(); // both leased, none due
  });

  it('a running job is not claimable before its lease expires, and is after', async () => {
    await insertJobs(t.db, [newJob(0, [], now())]);
    await claimJob(t.db, claimOpts('p1'));
    clock.advance(LEASE_MS - 1);
    expect(await claimJob(t.db, claimOpts('p2'))).toBeNull();
    clock.advance(2);
    const again = await claimJob(t.db, claimOpts('p2'));
    expect(again?.claim).toMatchObject({ attempt: 2, reclaimed: true, owner: 'p2' });
  });
});

describe('processor killed mid-job', () => {
  it('the job is claimed again after its lease expires, with attempt 2 and the same Idempotency-Key; the dead processor cannot record its result later', async () => {
    const [job] = await insertJobs(t.db, [newJob(0, [{ type: 'webhook', url: receiver.url }], now())]);
    // Processor A claims the job and delivers the webhook, then dies before recording the answer.
    const a = await claimJob(t.db, claimOpts('processor-a'));
    await webhookStep.run(a!.job.steps[0]!, {
      job: a!.job, attempt: a!.claim.attempt, stepIndex: 0, signal: new AbortController().signal,
      fetch: globalThis.fetch, clock, config: ctx.config, log: silentLogger,
    });
    expect((await getJob(t.db, job!.key)).status).toBe('running');
    // Before the lease expires nobody else may run it.
    expect((await processJobs(ctx, { owner: 'processor-b' })).claimed).toBe(0);

    clock.advance(LEASE_MS + 1);
    const summary = await processJobs(ctx, { owner: 'processor-b' });
    expect(summary).toMatchObject({ claimed: 1, reclaimed: 1, succeeded: 1 });
    expect(receiver.hits.map((h) => [h.key, h.attempt])).toEqual([
      [job!.key, 1],
      [job!.key, 2],
    ]);
    const done = await getJob(t.db, job!.key);
    expect(done).toMatchObject({ status: 'succeeded', attempts: 2 });

    // A comes back (e.g. a frozen instance thawing) and tries to write: every fenced write is refused.
    expect(await recordSuccess(t.db, a!.claim, now())).toBe(false);
    expect(await recordFailure(t.db, a!.claim, serverError, retryPolicyFrom(ctx), now())).toBe('lost');
    expect(await recordStepProgress(t.db, a!.claim, 1, now())).toBe(false);
    expect(await getJob(t.db, job!.key)).toEqual(done);
  });
});

describe('stale processor', () => {
  it('cannot overwrite the newer attempt while it runs, and the newer attempt records its result', async () => {
    const [job] = await insertJobs(t.db, [newJob(0, [], now())]);
    const a = await claimJob(t.db, claimOpts('a'));
    clock.advance(LEASE_MS + 1);
    const b = await claimJob(t.db, claimOpts('b'));
    expect(b?.claim.attempt).toBe(2);
    expect(await recordFailure(t.db, a!.claim, { ...serverError, retryable: false }, retryPolicyFrom(ctx), now())).toBe('lost');
    expect(await recordSuccess(t.db, a!.claim, now())).toBe(false);
    const during = await getJob(t.db, job!.key);
    expect(during).toMatchObject({ status: 'running', attempts: 2, lastError: null });
    expect(during.lease?.owner).toBe('b');
    expect(await recordSuccess(t.db, b!.claim, now())).toBe(true);
    expect((await getJob(t.db, job!.key)).status).toBe('succeeded');
  });

  it('the same owner with an older claim token is fenced too (replay reset attempts)', async () => {
    const [job] = await insertJobs(t.db, [newJob(0, [], now())]);
    const first = await claimJob(t.db, claimOpts('same'));
    // Simulate: the job died and was replayed (attempts back to 0) while the first claim was still out.
    await t.db.collection(COLLECTIONS.jobs).updateOne({ key: job!.key }, { $set: { status: 'queued', attempts: 0, lease: null, runAt: now() } });
    const second = await claimJob(t.db, claimOpts('same'));
    expect(second?.claim.attempt).toBe(first?.claim.attempt);
    expect(await recordSuccess(t.db, first!.claim, now())).toBe(false);
    expect(await recordSuccess(t.db, second!.claim, now())).toBe(true);
  });

  it('two processors racing for one job: exactly one claims it', async () => {
    await insertJobs(t.db, [newJob(0, [], now())]);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => claimJob(t.db, claimOpts(`p${i}`))));
    expect(results.filter(Boolean)).toHaveLength(1);
  });
});

describe('abandoned last attempt', () => {
  it('a running job whose last allowed attempt lost its lease goes to dead, not round again', async () => {
    const [job] = await insertJobs(t.db, [newJob(0, [{ type: 'webhook', url: receiver.url }], now(), { attempts: 2 })]);
    await claimJob(t.db, claimOpts('crashed')); // attempt 3 of 3, never reports back
    clock.advance(LEASE_MS + 1);
    expect(await claimJob(t.db, claimOpts('other'))).toBeNull();
    const summary = await processJobs(ctx);
    expect(summary).toMatchObject({ abandonedDead: 1, claimed: 0 });
    const stored = await getJob(t.db, job!.key);
    expect(stored).toMatchObject({ status: 'dead', deadReason: 'lease_expired', lease: null, attempts: 3 });
    expect(stored.lastError).toMatchObject({ code: 'lease_expired', retryable: true });
    expect(receiver.hits).toHaveLength(0);
  });

  it('a running job with attempts left and a live lease is left alone', async () => {
    await insertJobs(t.db, [newJob(0, [], now(), { attempts: 2 })]);
    await claimJob(t.db, claimOpts('alive'));
    expect(await deadAbandoned(t.db, now(), 3)).toBe(0);
  });
});
