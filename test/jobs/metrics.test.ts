import { beforeEach, describe, expect, it } from 'vitest';
import type { AppContext } from '../../lib/platform/context.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { jobMetrics } from '../../lib/jobs/metrics.js';
import { useJobsDb } from './support/db.js';
import { FakeClock } from './support/fake-clock.js';
import { insertJobs, newJob } from './support/jobs.js';

const t = useJobsDb('jobs_metrics');
let clock: FakeClock;
let ctx: AppContext;

beforeEach(async () => {
  await t.db.collection(COLLECTIONS.jobs).deleteMany({});
  clock = new FakeClock();
  ctx = await t.context(clock);
});

const ago = (ms: number) => new Date(clock.now() - ms);

describe('jobMetrics', () => {
  it('reports every status key, zero on an empty collection', async () => {
    const m = await jobMetrics(ctx);
    expect(m.counts).toEqual({ queued: 0, running: 0, succeeded: 0, failed: 0, dead: 0 });
    expect(m).toMatchObject({ due: 0, oldestDueAgeMs: null });
    expect(m.recent).toMatchObject({ sampled: 0, succeeded: 0, failed: 0, successRate: null, failureRate: null, avgAttempts: null, latencyMs: { p50: null, p95: null, max: null } });
  });

  it('counts, oldest due age, rates, attempts and latency percentiles', async () => {
    // Succeeded in the last hour: latency 1..20 s from the event's wall time (or createdAt), 1–2 attempts.
    const succeeded = Array.from({ length: 20 }, (_, i) =>
      newJob(i, [], ago(60_000), {
        status: 'succeeded',
        attempts: i < 10 ? 1 : 2,
        eventWallTime: i % 2 ? ago(120_000 + (i + 1) * 1_000) : null,
        createdAt: ago(120_000 + (i + 1) * 1_000),
        finishedAt: ago(120_000),
      }),
    );
    const deadRecent = [0, 1, 2, 3, 4].map((i) => newJob(100 + i, [], ago(60_000), { status: 'dead', attempts: 5, finishedAt: ago(30_000) }));
    const old = newJob(200, [], ago(10_000_000), { status: 'succeeded', attempts: 9, finishedAt: ago(7_200_000) });
    const queuedDue = [newJob(300, [], ago(45_000)), newJob(301, [], ago(5_000))];
    const queuedLater = newJob(302, [], new Date(clock.now() + 60_000));
    const running = newJob(303, [], ago(1_000), { status: 'running', attempts: 1 });
    const failed = newJob(304, [], ago(1_000), { status: 'failed' });
    await insertJobs(t.db, [...succeeded, ...deadRecent, old, ...queuedDue, queuedLater, running, failed]);

    const m = await jobMetrics(ctx);
    expect(m.counts).toEqual({ queued: 3, running: 1, succeeded: 21, failed: 1, dead: 5 });
    expect(m.due).toBe(2);
    expect(m.oldestDueAgeMs).toBe(45_000);
    expect(m.recent).toMatchObject({ windowMs: 3_600_000, sampled: 25, truncated: false, succeeded: 20, failed: 5, successRate: 0.8, failureRate: 0.2 });
    expect(m.recent.avgAttempts).toBeCloseTo((10 * 1 + 10 * 2 + 5 * 5) / 25);
    expect(m.recent.latencyMs).toEqual({ p50: 10_000, p95: 19_000, p99: 20_000, max: 20_000 });
  });

  it('bounds the sample and says so', async () => {
    await insertJobs(t.db, Array.from({ length: 30 }, (_, i) => newJob(i, [], ago(10_000), { status: 'succeeded', attempts: 1, finishedAt: ago(i * 1_000) })));
    const m = await jobMetrics(ctx, { sampleLimit: 10, recentMs: 600_000 });
    expect(m.recent).toMatchObject({ sampled: 10, truncated: true, succeeded: 10, windowMs: 600_000 });
  });
});
