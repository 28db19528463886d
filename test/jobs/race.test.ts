/**
 * Five processors racing over 1,000 jobs, some of which fail on their first attempt.
 * Promise tried: each job succeeds exactly once and no attempt of a job runs twice.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { processJobs } from '../../lib/jobs/process.js';
import type { ProcessSummary } from '../../lib/jobs/types.js';
import { useJobsDb } from './support/db.js';
import { FakeClock } from './support/fake-clock.js';
import { allJobs, insertJobs, newJob } from './support/jobs.js';
import { startReceiver, type Receiver } from './support/receiver.js';

const t = useJobsDb('jobs_race');
let receiver: Receiver;

beforeAll(async () => {
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver?.close();
});

it('five processors, 1,000 jobs: every job succeeds once, no (job, attempt) is delivered twice', async () => {
  const clock = new FakeClock();
  const ctx = await t.context(clock, { JOB_MAX_ATTEMPTS: '5' });
  const N = 1_000;
  const jobs = await insertJobs(t.db, Array.from({ length: N }, (_, i) => newJob(i, [{ type: 'webhook', url: receiver.url }], new Date(clock.now()))));
  const failFirst = new Set(jobs.filter((_, i) => i % 7 === 0).map((j) => j.key));
  receiver.behave = (hit) => (hit.attempt === 1 && failFirst.has(hit.key!) ? { status: 503 } : { status: 200 });

  const totals: ProcessSummary[] = [];
  // Retries come back due at once (random 0 → no backoff), so rounds repeat until nothing is left;
  // each round is five concurrent processors with four workers each.
  for (let round = 0; round < 5; round++) {
    const summaries = await Promise.all(
      Array.from({ length: 5 }, (_, p) => processJobs(ctx, { owner: `p${p}`, concurrency: 4, random: () => 0 })),
    );
    totals.push(...summaries);
    if (!summaries.some((s) => s.moreDue)) break;
  }

  const perAttempt = new Map<string, number>();
  for (const hit of receiver.hits) {
    const id = `${hit.key}#${hit.attempt}`;
    perAttempt.set(id, (perAttempt.get(id) ?? 0) + 1);
  }
  expect([...perAttempt.values()].filter((n) => n > 1)).toEqual([]);
  expect(receiver.hits).toHaveLength(N + failFirst.size);

  const stored = await allJobs(t.db);
  expect(stored.filter((j) => j.status === 'succeeded')).toHaveLength(N);
  for (const job of stored) expect(job.attempts).toBe(failFirst.has(job.key) ? 2 : 1);

  const sum = (k: 'claimed' | 'succeeded' | 'retried' | 'lost') => totals.reduce((n, s) => n + s[k], 0);
  expect(sum('succeeded')).toBe(N);
  expect(sum('retried')).toBe(failFirst.size);
  expect(sum('claimed')).toBe(N + failFirst.size);
  expect(sum('lost')).toBe(0);
  expect(new Set(totals.filter((s) => s.claimed > 0).map((s) => s.owner)).size).toBeGreaterThan(1);
  expect(await t.db.collection(COLLECTIONS.jobs).countDocuments({ status: { $ne: 'succeeded' } })).toBe(0);
});
