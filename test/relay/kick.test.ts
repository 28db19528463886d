/**
 * Jobs right away (lib/jobs/kick.ts): a flush that creates jobs asks for a job-processor run at
 * once — at most one per second, never blocking nor failing the drain.
 */
import { describe, expect, it } from 'vitest';
import { JobsKick, JOBS_KICK_INTERVAL_MS } from '../../lib/jobs/kick.js';
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
    for (let i = 0; i < 5; i++) kick.request();
    clock.t += JOBS_KICK_INTERVAL_MS - 20; // still the same interval
    kick.request();
    clock.t += 20; // the next one
    kick.request();
    kick.request();
    await kick.settled();
    expect(publisher.messages.map((m) => [m.url, m.deduplicationId, m.flowControlKey])).toEqual([
      ['http://kick.test/api/jobs/process', 'jobs-kick-5', 'jobs-kick'],
      ['http://kick.test/api/jobs/process', 'jobs-kick-6', 'jobs-kick'],
    ]);
    expect(kick.outcome).toEqual({ requested: 8, sent: 2, deduplicated: 0, failed: 0 });
  });

  it('without QStash, starts an in-process run through the context port, once per interval', async () => {
    const clock = new ManualClock(1_000_000);
    const ctx = await testContext(mongo.db(), mongo.client(), {}, clock);
    let runs = 0;
    ctx.runJobsNow = () => void runs++;
    const kick = new JobsKick(ctx);
    kick.request();
    kick.request();
    expect(runs).toBe(1);
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
