/**
 * Ordering rule (lib/jobs/ordering.ts): the jobs of one workflow for one submission run in event
 * order; other submissions are not held up. Promises tried with one processor and with several
 * racing: a later event's job is never delivered before an earlier one of the same submission has
 * finished, and a dead job does not hold the ones after it.
 */
import { ObjectId, Timestamp } from 'mongodb';
import { describe, expect, it } from 'vitest';
import type { AppContext } from '../../lib/platform/context.js';
import { claimDueJobs } from '../../lib/jobs/claim-batch.js';
import { processJobs } from '../../lib/jobs/process.js';
import type { ProcessedJobDoc } from '../../lib/data/documents.js';
import { useJobsHarness } from './support/harness.js';
import type { FakeClock } from './support/fake-clock.js';
import { getJob, insertJobs, newJob } from './support/jobs.js';
import type { Receiver } from './support/receiver.js';

let receiver: Receiver;
let clock: FakeClock;
let ctx: AppContext;
const t = useJobsHarness('jobs_ordering', (h) => ({ receiver, clock, ctx } = h));

const now = () => new Date(clock.now());
const webhook = () => [{ type: 'webhook', url: receiver.url }];
const claimOpts = (owner: string) => ({ owner, now: now(), leaseMs: 30_000, maxAttempts: 3, limit: 50 });

/** The jobs of one submission: its insert, then `updates` update events, in cluster-time order. */
function submissionJobs(i: number, updates: number, overrides: Partial<ProcessedJobDoc> = {}): ProcessedJobDoc[] {
  const first = newJob(i, webhook(), now(), { eventClusterTime: new Timestamp({ t: 1_000, i: 1 }), ...overrides });
  const rest = Array.from({ length: updates }, (_, u) => ({
    ...first,
    _id: new ObjectId(),
    key: `${first.workflowId}:${first.submissionId}:update:${u}`,
    event: 'update' as const,
    eventClusterTime: new Timestamp({ t: 1_000 + u + 1, i: 1 }),
  }));
  return [first, ...rest];
}

describe('claim', () => {
  it('an update job waits while the insert of its submission is queued or running; other submissions do not', async () => {
    const [insert, update] = submissionJobs(0, 1);
    const [otherInsert, otherUpdate] = submissionJobs(1, 1, { workflowId: 'wf2' });
    // The update is due earlier than its insert: order comes from the events, not from runAt.
    await insertJobs(t.db, [{ ...update!, runAt: new Date(clock.now() - 5_000) }, insert!, otherInsert!]);
    const first = await claimDueJobs(t.db, claimOpts('p1'));
    expect(first.claimed.map((c) => c.job.key).sort()).toEqual([insert!.key, otherInsert!.key].sort());
    expect(first).toMatchObject({ candidates: 3, blocked: 1, blockedIds: [update!._id.toHexString()] });
    // Still held while the insert runs.
    expect((await claimDueJobs(t.db, claimOpts('p2'))).claimed).toHaveLength(0);

    // An update of a submission with nothing unfinished before it runs at once.
    await t.db.collection('workflow_jobs').updateOne({ _id: otherInsert!._id }, { $set: { status: 'succeeded', lease: null } });
    await insertJobs(t.db, [otherUpdate!]);
    expect((await claimDueJobs(t.db, claimOpts('p2'))).claimed.map((c) => c.job.key)).toEqual([otherUpdate!.key]);

    // Once the insert finished, its update is claimable.
    await t.db.collection('workflow_jobs').updateOne({ _id: insert!._id }, { $set: { status: 'succeeded', lease: null } });
    expect((await claimDueJobs(t.db, claimOpts('p3'))).claimed.map((c) => c.job.key)).toEqual([update!.key]);
  });

  it('a dead job does not hold the later jobs of its submission', async () => {
    const [insert, update] = submissionJobs(0, 1);
    await insertJobs(t.db, [{ ...insert!, status: 'dead' }, update!]);
    expect((await claimDueJobs(t.db, claimOpts('p1'))).claimed.map((c) => c.job.key)).toEqual([update!.key]);
  });

  it('held-back jobs do not hide claimable jobs behind them', async () => {
    // 30 held-back updates due first, then one free insert; batches of 10 still reach the insert.
    const [insert, ...updates] = submissionJobs(0, 30);
    const [free] = submissionJobs(1, 0);
    await insertJobs(t.db, [{ ...insert!, status: 'running', lease: { owner: 'x', expiresAt: new Date(clock.now() + 60_000), token: 't' } }]);
    await insertJobs(t.db, updates.map((u, i) => ({ ...u, runAt: new Date(clock.now() - 60_000 + i) })));
    await insertJobs(t.db, [free!]);
    const summary = await processJobs(ctx, { claimBatch: 10, maxClaimBatch: 10 });
    expect(summary).toMatchObject({ claimed: 1, succeeded: 1 });
    expect(receiver.hits.map((h) => h.key)).toEqual([free!.key]);
  });
});

describe('processors racing', () => {
  it('four processors over 30 submissions × 4 events, some failing once: each submission is delivered in event order', async () => {
    const jobs = Array.from({ length: 30 }, (_, i) => submissionJobs(i, 3)).flat();
    await insertJobs(t.db, jobs);
    const order = new Map(jobs.map((j) => [j.key, j.eventClusterTime!.getHighBits()]));
    const failOnce = new Set(jobs.filter((_, i) => i % 5 === 1).map((j) => j.key));
    receiver.behave = (hit) => (hit.attempt === 1 && failOnce.has(hit.key!) ? { status: 503 } : { status: 200 });
    for (let round = 0; round < 20; round++) {
      const runs = await Promise.all(Array.from({ length: 4 }, (_, p) => processJobs(ctx, { owner: `p${p}`, concurrency: 4, random: () => 0 })));
      if (!runs.some((r) => r.moreDue)) break;
    }
    for (const job of jobs) expect((await getJob(t.db, job.key)).status).toBe('succeeded');
    // Per submission, every delivery (failed ones included) is of the earliest event whose job has
    // not succeeded yet: no later event is ever sent before the earlier ones went through.
    const bySubmission = new Map<string, { key: string; ok: boolean }[]>();
    for (const hit of receiver.hits) {
      const sub = hit.key!.split(':')[1]!;
      const list = bySubmission.get(sub) ?? [];
      list.push({ key: hit.key!, ok: !(hit.attempt === 1 && failOnce.has(hit.key!)) });
      bySubmission.set(sub, list);
    }
    expect(bySubmission.size).toBe(30);
    for (const hits of bySubmission.values()) {
      const events = [...new Set(hits.map((h) => order.get(h.key)!))].sort((a, b) => a - b);
      let next = 0;
      for (const hit of hits) {
        expect(order.get(hit.key)).toBe(events[next]);
        if (hit.ok) next++;
      }
      expect(hits.filter((h) => h.ok)).toHaveLength(4);
    }
  });
});
