/**
 * Jobs right away (lib/jobs/kick.ts): a flush that creates jobs asks for a job-processor run at
 * once — at most one per second, never blocking nor failing the drain.
 */
import { describe, expect, it, vi } from 'vitest';
import { JobsKick, JOBS_KICK_INTERVAL_MS, singleFlightRuns } from '../../lib/jobs/kick.js';
import { drainStream } from '../../lib/drain/drain.js';
import { orgStream } from '../../lib/streams/refs.js';
import type { PublishMessage, PublishResult, Publisher } from '../../lib/qstash/publisher.js';
import { insertSubmissions, jobCounts, seedWorkflow, testContext } from '../support/context.js';
import { useTestDb } from '../support/mongo.js';
import { systemClock, type Clock } from '../../lib/platform/clock.js';

const mongo = useTestDb('kick');

class Recording implements Publisher {
  readonly messages: PublishMessage[] = [];
  async publishBatch(messages: PublishMessage[]): Promise<PublishResult[]> {
    this.messages.push(...messages);
    return messages.map(() => ({ messageId: 'm', deduplicated: false }));
  }
}

class ManualClock implements Clock {
  constructor(public t: number) {}
  now() {
    return this.t;
  }
  sleep(ms: number, signal?: AbortSignal) {
    return systemClock.sleep(ms, signal);
  }
}

describe('JobsKick', () => {
  it('publishes at most one kick per interval, deduplicated by the interval, to the processor route', async () => {
    const clock = new ManualClock(5 * JOBS_KICK_INTERVAL_MS + 10);
    const ctx = await testContext(mongo.db(), mongo.client(), { PUBLIC_BASE_URL: 'http://kick.test' }, clock);
    const publisher = new Recording();
    ctx.publisher = publisher;
    const kick = new JobsKick(ctx);
    kick.request();
    await kick.settled();
    clock.t += 2 * JOBS_KICK_INTERVAL_MS; // a quiet interval passes: the next request is sent at once
    kick.request();
    await kick.settled();
    expect(publisher.messages.map((m) => [m.url, m.deduplicationId, m.flowControlKey, m.delaySeconds ?? 0])).toEqual([
      ['http://kick.test/api/jobs/process', 'jobs-kick-5', 'jobs-kick', 0],
      ['http://kick.test/api/jobs/process', 'jobs-kick-7', 'jobs-kick', 0],
    ]);
    expect(kick.outcome).toEqual({ requested: 2, sent: 2, deduplicated: 0, failed: 0 });
  });

  it('a later request in a kicked interval is not dropped: one trailing kick for the next interval covers it', async () => {
    // The run kicked at the start of an interval may have found nothing left when a later flush of
    // the same interval writes its jobs; those jobs must not wait for the cron minute.
    const clock = new ManualClock(5 * JOBS_KICK_INTERVAL_MS + 10);
    const ctx = await testContext(mongo.db(), mongo.client(), { PUBLIC_BASE_URL: 'http://kick.test' }, clock);
    const publisher = new Recording();
    ctx.publisher = publisher;
    const kick = new JobsKick(ctx);
    for (let i = 0; i < 5; i++) kick.request(); // one at once, one trailing, three covered by it
    clock.t += JOBS_KICK_INTERVAL_MS - 20; // still interval 5: covered by the trailing kick
    kick.request();
    clock.t += 20; // interval 6, whose kick is the trailing one already out: one more trailing kick
    kick.request();
    kick.request();
    await kick.settled();
    expect(publisher.messages.map((m) => [m.deduplicationId, m.delaySeconds ?? 0])).toEqual([
      ['jobs-kick-5', 0],
      ['jobs-kick-6', 1],
      ['jobs-kick-7', 1],
    ]);
    expect(kick.outcome).toEqual({ requested: 8, sent: 3, deduplicated: 0, failed: 0 });
  });

  it('without QStash, hands every request to the in-process port, which runs one run at a time and folds the rest into one more', async () => {
    const clock = new ManualClock(1_000_000);
    const ctx = await testContext(mongo.db(), mongo.client(), {}, clock);
    let runs = 0;
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    ctx.runJobsNow = singleFlightRuns(async () => {
      runs++;
      if (runs === 1) await blocked;
    }, () => undefined);
    const kick = new JobsKick(ctx);
    kick.request(); // starts run 1
    kick.request(); // during run 1: one more run after it
    kick.request(); // folded into that one
    release();
    await vi.waitFor(() => expect(runs).toBe(2));
    expect(kick.outcome).toMatchObject({ requested: 3, sent: 3, failed: 0 });
  });
});

describe('drain with kicks', () => {
  it('asks for a processor run when a flush creates jobs', async () => {
    const ctx = await testContext(mongo.db(), mongo.client(), { PUBLIC_BASE_URL: 'http://kick.test' });
    const publisher = new Recording();
    ctx.publisher = publisher;
    await seedWorkflow(mongo.db(), { organizationId: 'kicked' });
    await drainStream(ctx, orgStream('kicked'));
    expect(publisher.messages).toHaveLength(0); // no jobs, no kick
    await insertSubmissions(mongo.db(), 10, { orgId: 'kicked' });
    const run = await drainStream(ctx, orgStream('kicked'));
    expect(run.jobsCreated).toBe(10);
    expect(run.jobsKick).toMatchObject({ sent: 1, failed: 0 });
    expect(publisher.messages.map((m) => m.url)).toEqual(['http://kick.test/api/jobs/process']);
  });

  it('a failing kick (QStash down) neither fails nor blocks the drain: its jobs are written and its token saved', async () => {
    const ctx = await testContext(mongo.db(), mongo.client(), { PUBLIC_BASE_URL: 'http://kick.test' });
    ctx.publisher = { publishBatch: () => Promise.reject(new Error('QStash unreachable')) };
    await seedWorkflow(mongo.db(), { organizationId: 'kickfail' });
    await drainStream(ctx, orgStream('kickfail'));
    const ids = await insertSubmissions(mongo.db(), 10, { orgId: 'kickfail' });
    const run = await drainStream(ctx, orgStream('kickfail'));
    expect(run).toMatchObject({ status: 'completed', jobsCreated: 10, error: null });
    expect(run.jobsKick).toMatchObject({ sent: 0 });
    expect(run.jobsKick!.failed).toBeGreaterThanOrEqual(1);
    const counts = await jobCounts(mongo.db(), { organizationId: 'kickfail' });
    expect(ids.every((id) => counts.get(id) === 1)).toBe(true);
    expect(await drainStream(ctx, orgStream('kickfail'))).toMatchObject({ events: 0, jobsCreated: 0 });
  });
});
