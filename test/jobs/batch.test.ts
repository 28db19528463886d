/**
 * Batched claims and batched result writes. Promises tried: processors racing with batch claims
 * take disjoint jobs, each claim carries its own lease token and is fenced exactly like a single
 * claim; a batch of fenced writes tells each writer whether its own write was recorded; jobs
 * claimed but not started by the deadline go back untouched.
 */
import { describe, expect, it } from 'vitest';
import type { AppContext } from '../../lib/platform/context.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { claimJob } from '../../lib/jobs/claim.js';
import { claimDueJobs } from '../../lib/jobs/claim-batch.js';
import { recordFailure, recordSuccess, successUpdate } from '../../lib/jobs/complete.js';
import { processJobs } from '../../lib/jobs/process.js';
import { ResultBatcher } from '../../lib/jobs/result-batch.js';
import { retryPolicyFrom } from '../../lib/jobs/run.js';
import { useJobsHarness } from './support/harness.js';
import type { FakeClock } from './support/fake-clock.js';
import { allJobs, getJob, insertJobs, newJob } from './support/jobs.js';
import type { Receiver } from './support/receiver.js';

let receiver: Receiver;
let clock: FakeClock;
let ctx: AppContext;
const LEASE_MS = 30_000;
const t = useJobsHarness('jobs_batch', (h) => ({ receiver, clock, ctx } = h));

const now = () => new Date(clock.now());
const batchOpts = (owner: string, limit: number) => ({ owner, now: now(), leaseMs: LEASE_MS, maxAttempts: 3, limit });
const serverError = { code: 'webhook_server_error', message: 'answered 500', retryable: true, retryAfterMs: undefined };

describe('claimDueJobs', () => {
  it('claims the earliest due jobs up to the limit, each with its own token, attempts incremented', async () => {
    const jobs = await insertJobs(t.db, [0, 1, 2, 3, 4].map((i) => newJob(i, [], new Date(clock.now() - (10 - i) * 1_000))));
    await insertJobs(t.db, [newJob(9, [], new Date(clock.now() + 60_000))]); // not due
    const got = await claimDueJobs(t.db, { ...batchOpts('p1', 3), random: () => 0 }); // the window's start
    expect(got).toMatchObject({ candidates: 5, raced: 0, blocked: 0 });
    expect(got.claimed.map((c) => c.job.key)).toEqual(jobs.slice(0, 3).map((j) => j.key));
    expect(new Set(got.claimed.map((c) => c.claim.token)).size).toBe(3);
    for (const { claim, job } of got.claimed) {
      expect(claim).toMatchObject({ owner: 'p1', attempt: 1, reclaimed: false, leaseExpiresAt: new Date(clock.now() + LEASE_MS) });
      const stored = await getJob(t.db, job.key);
      expect(stored).toMatchObject({ status: 'running', attempts: 1, startedAt: now() });
      expect(stored.lease).toEqual({ owner: 'p1', expiresAt: new Date(clock.now() + LEASE_MS), token: claim.token });
      // What the processor runs is what is stored.
      expect(job).toEqual(stored);
    }
    const rest = await claimDueJobs(t.db, batchOpts('p2', 10));
    expect(rest.claimed.map((c) => c.job.key)).toEqual(jobs.slice(3).map((j) => j.key));
    expect((await claimDueJobs(t.db, batchOpts('p3', 10))).candidates).toBe(0);
  });

  it('reclaims a running job whose lease expired (attempt 2, reclaimed), and the first claim is fenced out', async () => {
    const [job] = await insertJobs(t.db, [newJob(0, [], now())]);
    const [first] = (await claimDueJobs(t.db, batchOpts('a', 5))).claimed;
    clock.advance(LEASE_MS - 1);
    expect((await claimDueJobs(t.db, batchOpts('b', 5))).candidates).toBe(0);
    clock.advance(2);
    const [second] = (await claimDueJobs(t.db, batchOpts('b', 5))).claimed;
    expect(second?.claim).toMatchObject({ owner: 'b', attempt: 2, reclaimed: true });
    expect(await recordSuccess(t.db, first!.claim, now())).toBe(false);
    expect(await recordFailure(t.db, first!.claim, serverError, retryPolicyFrom(ctx), now())).toBe('lost');
    expect(await new ResultBatcher(t.db).write(first!.claim, successUpdate(now()))).toBe(false);
    expect((await getJob(t.db, job!.key)).lease?.token).toBe(second!.claim.token);
    expect(await recordSuccess(t.db, second!.claim, now())).toBe(true);
  });

  it('a job claimed one at a time is not claimed again by a batch, and the other way round', async () => {
    await insertJobs(t.db, [newJob(0, [], now()), newJob(1, [], now())]);
    const single = await claimJob(t.db, { owner: 's', now: now(), leaseMs: LEASE_MS, maxAttempts: 3 });
    const batch = await claimDueJobs(t.db, batchOpts('b', 10));
    expect(batch.claimed).toHaveLength(1);
    expect(batch.claimed[0]!.job.key).not.toBe(single!.job.key);
    expect(await claimJob(t.db, { owner: 's', now: now(), leaseMs: LEASE_MS, maxAttempts: 3 })).toBeNull();
  });

  it('eight processors claiming batches at once over 400 jobs: every job claimed exactly once, the stored token is the winner’s', async () => {
    const N = 400;
    await insertJobs(t.db, Array.from({ length: N }, (_, i) => newJob(i, [], now())));
    const claims = await Promise.all(
      Array.from({ length: 8 }, async (_, p) => {
        const mine = [];
        for (;;) {
          const got = await claimDueJobs(t.db, batchOpts(`p${p}`, 16));
          mine.push(...got.claimed);
          if (got.candidates === 0) return mine;
        }
      }),
    );
    const all = claims.flat();
    expect(all).toHaveLength(N);
    expect(new Set(all.map((c) => c.job.key)).size).toBe(N);
    const stored = new Map((await allJobs(t.db)).map((j) => [j.key, j]));
    for (const c of all) {
      const job = stored.get(c.job.key)!;
      expect(job).toMatchObject({ status: 'running', attempts: 1, lease: { owner: c.claim.owner, token: c.claim.token } });
    }
    // Several processors got work: the claims really raced.
    expect(claims.filter((mine) => mine.length > 0).length).toBeGreaterThan(1);
  });
});

describe('ResultBatcher', () => {
  it('tells each writer of one bulk write whether its own fenced write was recorded', async () => {
    await insertJobs(t.db, [0, 1, 2, 3].map((i) => newJob(i, [], now())));
    const claimed = (await claimDueJobs(t.db, batchOpts('a', 4))).claimed;
    // Two of the four claims go stale: their leases expire and another processor claims the jobs.
    await t.db.collection(COLLECTIONS.jobs).updateMany(
      { _id: { $in: [claimed[1]!.claim.jobId, claimed[3]!.claim.jobId] } },
      { $set: { 'lease.expiresAt': new Date(clock.now() - 1) } },
    );
    const newer = (await claimDueJobs(t.db, batchOpts('b', 4))).claimed;
    expect(newer).toHaveLength(2);
    const writer = new ResultBatcher(t.db);
    const results = await Promise.all(claimed.map((c) => writer.write(c.claim, successUpdate(now()))));
    expect(results).toEqual([true, false, true, false]);
    expect(writer.writes).toBe(4);
    expect(writer.roundTrips).toBe(2); // the bulk write, and the read telling which writes matched
    for (const [i, c] of claimed.entries()) {
      expect((await getJob(t.db, c.job.key)).status).toBe(i % 2 === 0 ? 'succeeded' : 'running');
    }
  });

  it('writes handed in while a batch is in flight go out together in the next one', async () => {
    await insertJobs(t.db, Array.from({ length: 20 }, (_, i) => newJob(i, [], now())));
    const claimed = (await claimDueJobs(t.db, batchOpts('a', 20))).claimed;
    const writer = new ResultBatcher(t.db);
    const first = writer.write(claimed[0]!.claim, successUpdate(now()));
    await new Promise((r) => setImmediate(r)); // the first batch (one write) is now on its way
    const rest = claimed.slice(1).map((c) => writer.write(c.claim, successUpdate(now())));
    expect(await Promise.all([first, ...rest])).toEqual(claimed.map(() => true));
    expect(writer.roundTrips).toBe(2);
    expect(writer.writes).toBe(20);
  });
});

describe('processJobs with batched claims', () => {
  it('jobs claimed but not started by the deadline are released: queued, attempt undone, no lease', async () => {
    const jobs = await insertJobs(t.db, [0, 1, 2, 3].map((i) => newJob(i, [{ type: 'webhook', url: receiver.url }], now())));
    // The first delivery takes the run past the point where another attempt may start.
    receiver.behave = () => {
      clock.advance(4_000); // under WEBHOOK_TIMEOUT_MS (5 s); leaves 1 s < the 2 s an attempt needs
      return { status: 200 };
    };
    const summary = await processJobs(ctx, { concurrency: 1, claimBatch: 4, windowMs: 5_000 });
    expect(summary).toMatchObject({ claimed: 1, succeeded: 1, released: 3, stoppedBy: 'deadline', moreDue: true });
    expect(receiver.hits).toHaveLength(1);
    const stored = await allJobs(t.db);
    expect(stored.filter((j) => j.status === 'succeeded').map((j) => j.key)).toEqual([receiver.hits[0]!.key]);
    for (const job of stored.filter((j) => j.status !== 'succeeded')) expect(job).toMatchObject({ status: 'queued', attempts: 0, lease: null });
    // Released jobs are claimed by the next run as if never touched.
    receiver.behave = () => ({ status: 200 });
    expect(await processJobs(ctx)).toMatchObject({ claimed: 3, succeeded: 3 });
    expect(new Set(receiver.hits.map((h) => h.key))).toEqual(new Set(jobs.map((j) => j.key)));
    expect(receiver.hits.every((h) => h.attempt === 1)).toBe(true);
  });
});
