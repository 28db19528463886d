import { describe, expect, it } from 'vitest';
import { useTestDb } from '../support/mongo.js';
import { insertSubmissions, jobCounts, OffsetClock, seedWorkflow, testContext } from '../support/context.js';
import { drainStream } from '../../lib/drain/drain.js';
import { orgStream } from '../../lib/streams/refs.js';
import { CheckpointStore } from '../../lib/streams/checkpoint.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { tokenPosition } from '../../lib/streams/token.js';
import { SAFETY_MARGIN_MS } from '../../lib/platform/limits.js';

const mongo = useTestDb('drain');

describe('drain: the bounded, checkpointed pass over one stream', () => {
  it('with no token, starts where its workflows came into force: submissions before the first drain get jobs, and the token is saved', async () => {
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: 'idle' });
    const before = await insertSubmissions(mongo.db(), 3, { orgId: 'idle' });
    const run = await drainStream(ctx, orgStream('idle'));
    expect(run).toMatchObject({ status: 'completed', stoppedBy: 'idle', events: 3, jobsCreated: 3 });
    expect(run.tokenAfter).not.toBeNull();
    const cp = await new CheckpointStore(mongo.db()).get('org:idle');
    expect(cp?.token).toEqual(run.tokenAfter);
    expect(cp?.lease).toBeNull();
    // No first-drain blind spot: what the organization received before its stream's first drain has its jobs.
    const counts = await jobCounts(mongo.db(), { submissionId: { $in: before } });
    for (const id of before) expect(counts.get(id)).toBe(1);
    // An idle rerun reads nothing and saves nothing (only time passed).
    const idle = await drainStream(ctx, orgStream('idle'));
    expect(idle).toMatchObject({ events: 0, jobsCreated: 0 });
    expect((await new CheckpointStore(mongo.db()).get('org:idle'))?.tokenSavedAt).toEqual(cp?.tokenSavedAt);
  });

  it('dispatches every insert after the token once, and a rerun creates nothing new', async () => {
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: 'basic' });
    await drainStream(ctx, orgStream('basic'));
    const ids = await insertSubmissions(mongo.db(), 120, { orgId: 'basic' });
    const run = await drainStream(ctx, orgStream('basic'));
    expect(run).toMatchObject({ status: 'completed', events: 120, jobsCreated: 120, duplicates: 0, deadLettered: 0 });
    expect(run.flushes).toBeGreaterThanOrEqual(3); // batch size 50
    const counts = await jobCounts(mongo.db(), { organizationId: 'basic' });
    expect(ids.every((id) => counts.get(id) === 1)).toBe(true);
    const again = await drainStream(ctx, orgStream('basic'));
    expect(again).toMatchObject({ events: 0, jobsCreated: 0 });
    expect((await mongo.db().collection(COLLECTIONS.jobs).countDocuments({ organizationId: 'basic' }))).toBe(120);
  });

  it('records every run in drain_runs with what it did and why it stopped', async () => {
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: 'runs' });
    const run = await drainStream(ctx, orgStream('runs'), { startedBy: 'cron' });
    const stored = await mongo.db().collection(COLLECTIONS.runs).findOne({ _id: run.runId as never });
    expect(stored).toMatchObject({ streamId: 'org:runs', trigger: 'cron', stoppedBy: 'idle', status: 'completed' });
    expect(stored?.roundTrips).toBeGreaterThan(0);
  });

  it('never moves the token backwards across runs', async () => {
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: 'mono' });
    const positions: string[] = [];
    for (let i = 0; i < 4; i++) {
      await insertSubmissions(mongo.db(), 10, { orgId: 'mono' });
      const run = await drainStream(ctx, orgStream('mono'));
      const pos = tokenPosition(run.tokenAfter);
      if (pos) positions.push(pos);
    }
    expect(positions).toEqual([...positions].sort());
  });

  it('stops at the deadline with its progress saved, while events keep coming (real time)', async () => {
    const ctx = await testContext(mongo.db(), mongo.client(), { DRAIN_IDLE_MS: '60000' });
    await seedWorkflow(mongo.db(), { organizationId: 'busy' });
    await drainStream(ctx, orgStream('busy'), { windowMs: 600 });
    let writing = true;
    const writer = (async () => {
      while (writing) await insertSubmissions(mongo.db(), 5, { orgId: 'busy' });
    })();
    const windowMs = 1500;
    const started = Date.now();
    const run = await drainStream(ctx, orgStream('busy'), { windowMs });
    const elapsed = Date.now() - started;
    writing = false;
    await writer;
    expect(run.stoppedBy).toBe('deadline');
    expect(run.busy).toBe(true);
    // Reading stops by the deadline; the final flush, release and record fit in the safety margin
    // that maxDuration keeps beyond the window (a run ignoring the deadline would take the 60 s idle).
    expect(elapsed).toBeLessThan(windowMs + SAFETY_MARGIN_MS);
    expect(run.durationMs).toBeLessThan(windowMs + SAFETY_MARGIN_MS);
    const cp = await new CheckpointStore(mongo.db()).get('org:busy');
    expect(cp?.token).toEqual(run.tokenAfter);
    expect(run.jobsCreated).toBe(run.events);
  });

  it('stops at the deadline of an injected clock that runs fast', async () => {
    const clock = new OffsetClock();
    const ctx = await testContext(mongo.db(), mongo.client(), { DRAIN_IDLE_MS: '600000' }, { now: () => { clock.advance(100); return clock.now(); }, sleep: (ms) => clock.sleep(ms) });
    await seedWorkflow(mongo.db(), { organizationId: 'fast' });
    const run = await drainStream(ctx, orgStream('fast'), { windowMs: 5000 });
    expect(run.stoppedBy).toBe('deadline');
    expect(run.durationMs).toBeLessThanOrEqual(5000 + 1000);
    expect(run.tokenAfter).not.toBeNull();
  });

  it('stops after the max-events cap and says the stream is busy', async () => {
    const ctx = await testContext(mongo.db(), mongo.client(), { DRAIN_MAX_EVENTS: '30' });
    await seedWorkflow(mongo.db(), { organizationId: 'cap' });
    await drainStream(ctx, orgStream('cap'));
    await insertSubmissions(mongo.db(), 100, { orgId: 'cap' });
    const first = await drainStream(ctx, orgStream('cap'));
    expect(first.stoppedBy).toBe('max_events');
    expect(first.busy).toBe(true);
    expect(first.jobsCreated).toBe(first.events);
    let total = first.jobsCreated;
    for (let i = 0; i < 10 && total < 100; i++) total += (await drainStream(ctx, orgStream('cap'))).jobsCreated;
    expect(total).toBe(100);
  });

  it('skips a paused stream and says so', async () => {
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: 'paused' });
    await drainStream(ctx, orgStream('paused'));
    await new CheckpointStore(mongo.db()).setPaused(orgStream('paused'), true, new Date());
    const run = await drainStream(ctx, orgStream('paused'));
    expect(run).toMatchObject({ status: 'skipped', stoppedBy: 'paused' });
  });
});
