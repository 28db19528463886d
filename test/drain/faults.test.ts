import { describe, expect, it } from 'vitest';
import { useTestDb, failCommand, clearFailPoints } from '../support/mongo.js';
import { insertSubmissions, jobCounts, OffsetClock, seedWorkflow, testContext } from '../support/context.js';
import { expectExactlyOne } from '../support/assert.js';
import { crashingDb } from '../support/crash.js';
import { drainStream } from '../../lib/drain/drain.js';
import { orgStream } from '../../lib/streams/refs.js';
import { CheckpointStore } from '../../lib/streams/checkpoint.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { tokenPosition } from '../../lib/streams/token.js';

const mongo = useTestDb('drain_faults');

describe('promise 1+2+3: crashes at every step between reading and saving the token', () => {
  it('after a crash at any database operation, the next runs give exactly one job per submission', async () => {
    const clock = new OffsetClock();
    // Crash at operation 1, 2, 3 … of a run until a run gets through without reaching the crash point.
    let covered = 0;
    for (let crashAt = 1; crashAt < 100; crashAt++) {
      const orgId = `crash${crashAt}`;
      await seedWorkflow(mongo.db(), { organizationId: orgId });
      const ctx = await testContext(mongo.db(), mongo.client(), {}, clock);
      await drainStream(ctx, orgStream(orgId));
      const ids = await insertSubmissions(mongo.db(), 60, { orgId });
      const crashing = crashingDb(mongo.db(), crashAt);
      await drainStream({ ...ctx, db: crashing.db }, orgStream(orgId)).catch(() => undefined);
      // The dead invocation's lease expires; a later run takes over from the saved token.
      clock.advance(10 * 60_000);
      for (let i = 0; i < 2; i++) await drainStream(ctx, orgStream(orgId));
      await expectExactlyOne(mongo.db(), orgId, ids);
      if (!crashing.crashed()) break;
      covered++;
    }
    // acquire, registry, watch, two flushes (jobs + token each), release, run record at least.
    expect(covered).toBeGreaterThanOrEqual(8);
  });
});

describe('promise 1+5: crashes at every step of a recovery', () => {
  it('after a crash anywhere in a history-lost recovery, nothing is lost or doubled and the gap is recorded once', async () => {
    const clock = new OffsetClock();
    let covered = 0;
    let recorded = 0;
    for (let crashAt = 1; crashAt < 100; crashAt++) {
      const orgId = `rcrash${crashAt}`;
      await seedWorkflow(mongo.db(), { organizationId: orgId });
      const ctx = await testContext(mongo.db(), mongo.client(), {}, clock);
      await drainStream(ctx, orgStream(orgId));
      const ids = await insertSubmissions(mongo.db(), 30, { orgId });
      await failCommand(mongo.client(), { failCommands: ['aggregate'], errorCode: 286, errorLabels: ['NonResumableChangeStreamError'] });
      const crashing = crashingDb(mongo.db(), crashAt);
      try {
        await drainStream({ ...ctx, db: crashing.db }, orgStream(orgId)).catch(() => undefined);
        clock.advance(10 * 60_000);
        for (let i = 0; i < 2; i++) await drainStream(ctx, orgStream(orgId));
      } finally {
        await clearFailPoints(mongo.client());
      }
      await expectExactlyOne(mongo.db(), orgId, ids);
      const cp = await new CheckpointStore(mongo.db()).get(`org:${orgId}`);
      expect({ crashAt, recovery: cp?.recovery }).toEqual({ crashAt, recovery: null });
      // Recorded once — or not at all when the crash came after the fail point fired but before the
      // recovery was saved: the next run then resumes from the old token, which (the loss being
      // simulated) still works, so there is no gap to record.
      expect(cp?.gapCount, `crash at ${crashAt}`).toBeLessThanOrEqual(1);
      recorded += cp?.gapCount ?? 0;
      if (!crashing.crashed()) break;
      covered++;
    }
    expect(covered).toBeGreaterThanOrEqual(8);
    expect(recorded).toBeGreaterThanOrEqual(covered - 1);
  });
});

describe('promise 1+2+3: concurrent and duplicate deliveries', () => {
  it('five drains at once: one holds the lease, the others skip; no duplicate, token moves forward', async () => {
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: 'race' });
    await drainStream(ctx, orgStream('race'));
    const before = tokenPosition((await new CheckpointStore(mongo.db()).get('org:race'))?.token);
    const ids = await insertSubmissions(mongo.db(), 200, { orgId: 'race' });
    const runs = await Promise.all(Array.from({ length: 5 }, (_, i) => drainStream(ctx, orgStream('race'), { owner: `racer-${i}`, startedBy: i % 2 ? 'qstash' : 'cron' })));
    expect(runs.filter((r) => r.status === 'completed')).toHaveLength(1);
    expect(runs.filter((r) => r.status === 'skipped' && r.stoppedBy === 'leased')).toHaveLength(4);
    await drainStream(ctx, orgStream('race'));
    await expectExactlyOne(mongo.db(), 'race', ids);
    const after = tokenPosition((await new CheckpointStore(mongo.db()).get('org:race'))?.token);
    if (before && after) expect(after >= before).toBe(true);
  });

  it('the same drain delivered twice in a row (cron and QStash) dispatches once', async () => {
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: 'twice' });
    await drainStream(ctx, orgStream('twice'));
    const ids = await insertSubmissions(mongo.db(), 40, { orgId: 'twice' });
    const a = await drainStream(ctx, orgStream('twice'), { startedBy: 'cron' });
    const b = await drainStream(ctx, orgStream('twice'), { startedBy: 'qstash' });
    expect(a.jobsCreated + b.jobsCreated).toBe(40);
    await expectExactlyOne(mongo.db(), 'twice', ids);
  });

  it('a stale invocation whose lease was taken over cannot save its token', async () => {
    const clock = new OffsetClock();
    const ctx = await testContext(mongo.db(), mongo.client(), {}, clock);
    const store = new CheckpointStore(mongo.db());
    const stream = orgStream('fenced');
    const old = await store.acquire(stream, 'old', new Date(clock.now()), new Date(clock.now() + 1000));
    expect(old).not.toBeNull();
    clock.advance(5000);
    const fresh = await store.acquire(stream, 'new', new Date(clock.now()), new Date(clock.now() + 1000));
    expect(fresh!.fence).toBeGreaterThan(old!.fence);
    await expect(store.saveToken(old!, { _data: '82' + '7FFFFFFF00000001' + '04' }, new Date())).rejects.toMatchObject({ code: 'lease_lost' });
    void ctx;
  });
});

describe('promise 1+2: dropped connections and server faults mid-drain', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['getMore closes the connection', { failCommands: ['getMore'], closeConnection: true }],
    // mongod labels a genuine resumable getMore error; failCommand only attaches the labels it names.
    ['getMore fails with a resumable error', { failCommands: ['getMore'], errorCode: 10107, errorLabels: ['ResumableChangeStreamError'] }],
    // Unlabelled, the driver does not resume: the error reaches the drain, which reopens the stream.
    ['getMore fails with an error the driver does not resume', { failCommands: ['getMore'], errorCode: 10107 }],
    ['the job bulk write closes the connection (twice: past the driver retry)', { failCommands: ['update'], closeConnection: true, times: 2 }],
    ['the job bulk write fails with ShutdownInProgress', { failCommands: ['update'], errorCode: 91, times: 2 }],
    ['recording the run fails', { failCommands: ['insert'], errorCode: 91, times: 1 }],
  ];
  it.each(cases)('when %s → nothing lost, nothing duplicated', async (_name, data) => {
    const orgId = `net${cases.findIndex(([n]) => n === _name)}`;
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: orgId });
    await drainStream(ctx, orgStream(orgId));
    const ids = await insertSubmissions(mongo.db(), 80, { orgId });
    const { times = 1, ...rest } = data as { times?: number };
    await failCommand(mongo.client(), rest as never, { times });
    try {
      for (let i = 0; i < 4; i++) await drainStream(ctx, orgStream(orgId));
    } finally {
      await clearFailPoints(mongo.client());
    }
    await drainStream(ctx, orgStream(orgId));
    await expectExactlyOne(mongo.db(), orgId, ids);
  });
});

describe('poison events', () => {
  it('good submissions are dispatched, poison ones dead-lettered once with a reason, the stream goes on', async () => {
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: 'poison' });
    await drainStream(ctx, orgStream('poison'));
    const good1 = await insertSubmissions(mongo.db(), 10, { orgId: 'poison' });
    await mongo.db().collection('submissions_poison').insertMany([
      { organizationId: 'poison', data: { noForm: true }, submittedAt: new Date() },
      { organizationId: 'poison', formId: '', data: {}, submittedAt: new Date() },
    ]);
    const good2 = await insertSubmissions(mongo.db(), 10, { orgId: 'poison' });
    const run = await drainStream(ctx, orgStream('poison'));
    expect(run).toMatchObject({ jobsCreated: 20, deadLettered: 2, status: 'completed' });
    await expectExactlyOne(mongo.db(), 'poison', [...good1, ...good2]);
    const dead = await mongo.db().collection(COLLECTIONS.deadLetters).find({ streamId: 'org:poison' }).toArray();
    expect(dead).toHaveLength(2);
    expect(dead.every((d) => d.code === 'malformed_submission' && /formId/.test(d.reason))).toBe(true);
  });
});

describe('a stream that keeps failing', () => {
  it('is marked failing after STREAM_FAILING_AFTER failed runs in a row, and idle again after a good run', async () => {
    const orgId = 'failing';
    const ctx = await testContext(mongo.db(), mongo.client(), { STREAM_FAILING_AFTER: '3' });
    await seedWorkflow(mongo.db(), { organizationId: orgId });
    await drainStream(ctx, orgStream(orgId));
    const store = new CheckpointStore(mongo.db());
    // Unauthorized (13) is not retryable: each run fails at once and counts a failure.
    await failCommand(mongo.client(), { failCommands: ['aggregate'], errorCode: 13 }, 'alwaysOn');
    const states: string[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const run = await drainStream(ctx, orgStream(orgId));
        expect(run).toMatchObject({ status: 'failed', stoppedBy: 'error', error: { code: '13' } });
        states.push((await store.get(`org:${orgId}`))!.state);
      }
    } finally {
      await clearFailPoints(mongo.client());
    }
    expect(states).toEqual(['idle', 'idle', 'failing']);
    expect((await store.get(`org:${orgId}`))?.consecutiveFailures).toBe(3);
    const ids = await insertSubmissions(mongo.db(), 5, { orgId });
    const good = await drainStream(ctx, orgStream(orgId));
    expect(good.status).toBe('completed');
    expect(await store.get(`org:${orgId}`)).toMatchObject({ state: 'idle', consecutiveFailures: 0 });
    await expectExactlyOne(mongo.db(), orgId, ids);
  });

  it('a transient fault that outlasts the retries ends the run as failed without passing the last flush', async () => {
    const orgId = 'flaky';
    const clock = new OffsetClock();
    const ctx = await testContext(mongo.db(), mongo.client(), { DRAIN_WINDOW_MS: '3000' }, clock);
    await seedWorkflow(mongo.db(), { organizationId: orgId });
    await drainStream(ctx, orgStream(orgId));
    const before = (await new CheckpointStore(mongo.db()).get(`org:${orgId}`))?.token;
    const ids = await insertSubmissions(mongo.db(), 10, { orgId });
    await failCommand(mongo.client(), { failCommands: ['update'], errorCode: 91 }, 'alwaysOn');
    let run;
    try {
      run = await drainStream(ctx, orgStream(orgId));
    } finally {
      await clearFailPoints(mongo.client());
    }
    expect(run, JSON.stringify(run)).toMatchObject({ status: 'failed' });
    expect(run.reconnects).toBeGreaterThan(0);
    expect((await new CheckpointStore(mongo.db()).get(`org:${orgId}`))?.token).toEqual(before);
    // Its lease could not be released either (every write failed): the next run waits for it to expire.
    expect((await drainStream(ctx, orgStream(orgId))).stoppedBy).toBe('leased');
    clock.advance(60_000);
    await drainStream(ctx, orgStream(orgId));
    await expectExactlyOne(mongo.db(), orgId, ids);
  });
});

