/**
 * Scale-out (JOB_PARALLELISM): how many parallel runs a backlog asks for, what is published to
 * QStash for them, and in-process lanes that claim disjoint jobs alongside their lead.
 */
import { describe, expect, it } from 'vitest';
import type { AppContext } from '../../lib/platform/context.js';
import { processJobsAndContinue } from '../../lib/fanout/continuation.js';
import { lanesFor, scaleOut } from '../../lib/jobs/scale.js';
import type { PublishMessage, Publisher } from '../../lib/qstash/publisher.js';
import { useJobsHarness } from './support/harness.js';
import type { FakeClock } from './support/fake-clock.js';
import { allJobs, insertJobs, newJob } from './support/jobs.js';
import type { Receiver } from './support/receiver.js';

let receiver: Receiver;
let clock: FakeClock;
let ctx: AppContext;
const t = useJobsHarness('jobs_scale', (h) => ({ receiver, clock, ctx } = h));

describe('lanesFor', () => {
  it.each([
    // due, jobs/s, ms left, parallelism → lanes
    [0, 100, 10_000, 4, 0], // nothing due
    [500, 100, 10_000, 4, 0], // one run clears 1,000 in the time left
    [1_500, 100, 10_000, 4, 1],
    [2_001, 100, 10_000, 4, 2],
    [100_000, 100, 10_000, 4, 3], // capped at parallelism − 1
    [100_000, 100, 10_000, 1, 0], // JOB_PARALLELISM 1: never
    [10, 0, 10_000, 4, 3], // no attempt finished yet: the run is too slow for any backlog
  ])('%i due at %i/s with %i ms left, parallelism %i → %i lanes', (due, rate, left, p, lanes) => {
    expect(lanesFor(due, rate, left, p)).toBe(lanes);
  });
});

describe('scaleOut', () => {
  it('with QStash: one message per lane, deduplicated per wave and lane, each lane its own flow-control key', async () => {
    await insertJobs(t.db, Array.from({ length: 50 }, (_, i) => newJob(i, [], new Date(clock.now()))));
    const published: PublishMessage[] = [];
    const publisher: Publisher = {
      publishBatch: async (m) => {
        published.push(...m);
        return m.map((_, i) => ({ messageId: `msg_${i}`, deduplicated: false }));
      },
    };
    const config = { ...ctx.config, JOB_PARALLELISM: 3, PUBLIC_BASE_URL: 'https://app.example' } as AppContext['config'];
    const result = await scaleOut({ ...ctx, config, publisher }, { owner: 'jobs:w1', jobsPerSec: 1, remainingMs: 10_000, deadlineAt: clock.now() + 10_000, held: 0 });
    expect(result).toMatchObject({ due: 31, lanes: 2, mode: 'qstash', runs: [] });
    expect(published).toEqual([1, 2].map((lane) => ({
      url: 'https://app.example/api/jobs/process',
      body: { lane, wave: 'jobs:w1' },
      deduplicationId: `jobs-lane-jobs_w1-${lane}`,
      flowControlKey: `jobs-process-lane-${lane}`,
    })));
  });

  it('without QStash: a lead with a backlog it cannot clear runs lanes here; together they take disjoint jobs', async () => {
    const N = 200;
    const jobs = await insertJobs(t.db, Array.from({ length: N }, (_, i) => newJob(i, [{ type: 'webhook', url: receiver.url }], new Date(clock.now()))));
    // Every delivery takes 50 ms of the run's 5 s window: about 100 jobs per run, fewer than are due.
    receiver.behave = () => {
      clock.advance(50);
      return { status: 200 };
    };
    const config = { ...ctx.config, JOB_PARALLELISM: 3, JOB_WINDOW_MS: 5_000 } as AppContext['config'];
    const result = await processJobsAndContinue({ ...ctx, config });
    expect(result.scaleOut).toMatchObject({ mode: 'in_process', laneErrors: [] });
    expect(result.scaleOut!.lanes).toBeGreaterThan(0);
    const runs = [result.summary, ...result.scaleOut!.runs];
    expect(runs).toHaveLength(1 + result.scaleOut!.lanes);
    expect(result.scaleOut!.runs.reduce((n, r) => n + r.claimed, 0)).toBeGreaterThan(0);
    // Every delivery is of a different job (attempt 1), and what the runs claimed is what was delivered.
    expect(new Set(receiver.hits.map((h) => h.key)).size).toBe(receiver.hits.length);
    expect(receiver.hits.every((h) => h.attempt === 1)).toBe(true);
    const succeeded = (await allJobs(t.db)).filter((j) => j.status === 'succeeded');
    expect(runs.reduce((n, r) => n + r.succeeded, 0)).toBe(succeeded.length);
    expect(succeeded.length).toBe(receiver.hits.length);
    expect(jobs.length).toBe(N);
  });

  it('a lane neither scales out nor publishes a continuation, and leaves the dead-letter sweep and the due count to its lead', async () => {
    await insertJobs(t.db, [newJob(0, [], new Date(clock.now()))]);
    // Abandoned on its last attempt: the sweep at the start of a lead's run moves it to dead.
    const abandoned = newJob(1, [], new Date(clock.now()), {
      status: 'running',
      attempts: ctx.config.JOB_MAX_ATTEMPTS,
      lease: { owner: 'gone', token: 'gone-token', expiresAt: new Date(clock.now() - 1) },
    });
    await insertJobs(t.db, [abandoned]);
    const published: PublishMessage[] = [];
    const publisher: Publisher = { publishBatch: async (m) => (published.push(...m), m.map(() => ({ messageId: 'm', deduplicated: false }))) };
    // A window too short to start an attempt: the job stays due.
    const config = { ...ctx.config, JOB_WINDOW_MS: 1_000, PUBLIC_BASE_URL: 'https://app.example' } as AppContext['config'];
    const lane = await processJobsAndContinue({ ...ctx, config, publisher }, { lane: 1 });
    expect(lane.continuation).toBeNull();
    expect(lane.scaleOut).toBeUndefined();
    expect(published).toEqual([]);
    // No sweep and no due count (and no claim: the window is too short to start an attempt).
    expect(lane.summary).toMatchObject({ abandonedDead: 0, moreDue: false, roundTrips: 0 });
    expect((await allJobs(t.db)).find((j) => j._id.equals(abandoned._id))?.status).toBe('running');
    const lead = await processJobsAndContinue({ ...ctx, config, publisher });
    expect(lead.summary).toMatchObject({ abandonedDead: 1, moreDue: true, roundTrips: 2 });
    expect((await allJobs(t.db)).find((j) => j._id.equals(abandoned._id))?.status).toBe('dead');
  });
});
