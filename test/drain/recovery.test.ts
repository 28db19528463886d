import { describe, expect, it } from 'vitest';
import { useTestDb, failCommand, clearFailPoints } from '../support/mongo.js';
import { insertSubmissions, jobCounts, OffsetClock, seedWorkflow, testContext } from '../support/context.js';
import { expectExactlyOne } from '../support/assert.js';
import { crashingDb } from '../support/crash.js';
import { drainStream } from '../../lib/drain/drain.js';
import { orgStream } from '../../lib/streams/refs.js';
import { CheckpointStore } from '../../lib/streams/checkpoint.js';
import { reconcileSince } from '../../lib/drain/reconcile.js';
import { Deadline, systemClock } from '../../lib/platform/clock.js';

const mongo = useTestDb('drain_recovery');

describe('promise 1+5: lost history and unusable tokens are reconciled and recorded', () => {
  it.each([
    ['history lost (286)', 286, ['NonResumableChangeStreamError'], 'history_lost'],
    ['invalid resume token (260)', 260, [], 'invalid_token'],
  ] as const)('when the stream cannot resume: %s → scan the gap, record it, lose nothing', async (_n, code, labels, kind) => {
    const orgId = `gap${code}`;
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: orgId });
    await drainStream(ctx, orgStream(orgId));
    const lost = await insertSubmissions(mongo.db(), 30, { orgId });
    await failCommand(mongo.client(), { failCommands: ['aggregate'], errorCode: code, errorLabels: [...labels] });
    let run;
    try {
      run = await drainStream(ctx, orgStream(orgId));
    } finally {
      await clearFailPoints(mongo.client());
    }
    expect(run.recoveries).toEqual([{ kind, count: 1 }]);
    expect(run.status).toBe('completed');
    const cp = await new CheckpointStore(mongo.db()).get(`org:${orgId}`);
    expect(cp?.gapCount).toBe(1);
    expect(cp?.gaps[0]).toMatchObject({ reason: kind, count: 30, jobsCreated: 30 });
    expect(cp!.gaps[0]!.from.getTime()).toBeLessThan(cp!.gaps[0]!.to.getTime());
    expect(cp?.recovery).toBeNull();
    await expectExactlyOne(mongo.db(), orgId, lost);
    // After recovery the new token works: later inserts flow through the stream.
    const later = await insertSubmissions(mongo.db(), 10, { orgId });
    const next = await drainStream(ctx, orgStream(orgId));
    expect(next.recoveries).toEqual([]);
    await expectExactlyOne(mongo.db(), orgId, [...lost, ...later]);
  });

  it('a recovery scan longer than one window continues in the next run, and the gap is recorded once', async () => {
    const orgId = 'longgap';
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: orgId });
    await drainStream(ctx, orgStream(orgId));
    const lost = await insertSubmissions(mongo.db(), 1200, { orgId });
    // A clock that runs 40 ms per read makes the window end during the scan.
    let ticks = 0;
    const slow = await testContext(mongo.db(), mongo.client(), {}, { now: () => Date.now() + 40 * ticks++, sleep: systemClock.sleep });
    await failCommand(mongo.client(), { failCommands: ['aggregate'], errorCode: 286, errorLabels: ['NonResumableChangeStreamError'] });
    try {
      await drainStream(slow, orgStream(orgId), { windowMs: 1500 });
    } finally {
      await clearFailPoints(mongo.client());
    }
    for (let i = 0; i < 10; i++) {
      const cp = await new CheckpointStore(mongo.db()).get(`org:${orgId}`);
      if (!cp?.recovery) break;
      await drainStream(ctx, orgStream(orgId));
    }
    const cp = await new CheckpointStore(mongo.db()).get(`org:${orgId}`);
    expect(cp?.recovery).toBeNull();
    expect(cp?.gapCount).toBe(1);
    expect(cp?.gaps[0]?.count).toBeGreaterThanOrEqual(1200);
    await expectExactlyOne(mongo.db(), orgId, lost);
  });

  it('reconcile on purpose since a time dispatches what is missing and records a manual gap', async () => {
    const orgId = 'manual';
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: orgId });
    const since = new Date(Date.now() - 1000);
    const ids = await insertSubmissions(mongo.db(), 25, { orgId }); // never drained: no token yet
    const res = await reconcileSince(ctx, orgStream(orgId), since, Deadline.after(systemClock, 10_000));
    expect(res).toMatchObject({ scanned: 25, jobsCreated: 25, complete: true });
    await expectExactlyOne(mongo.db(), orgId, ids);
    const again = await reconcileSince(ctx, orgStream(orgId), since, Deadline.after(systemClock, 10_000));
    expect(again).toMatchObject({ jobsCreated: 0, duplicates: 25 });
    const cp = await new CheckpointStore(mongo.db()).get(`org:${orgId}`);
    expect(cp?.gaps.map((g) => g.reason)).toEqual(['manual', 'manual']);
  });
});

describe('promise 1: the collection is dropped and recreated (invalidate)', () => {
  it('keeps the invalidate token, reopens with startAfter and dispatches events after recreation', async () => {
    const orgId = 'dropped';
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: orgId });
    await drainStream(ctx, orgStream(orgId));
    const beforeDrop = await insertSubmissions(mongo.db(), 5, { orgId });
    await mongo.db().collection(`submissions_${orgId}`).drop();
    const afterDrop = await insertSubmissions(mongo.db(), 7, { orgId });
    const run = await drainStream(ctx, orgStream(orgId));
    expect(run.recoveries).toContainEqual({ kind: 'invalidate', count: 1 });
    await expectExactlyOne(mongo.db(), orgId, [...beforeDrop, ...afterDrop]);
    const more = await insertSubmissions(mongo.db(), 3, { orgId });
    await drainStream(ctx, orgStream(orgId));
    await expectExactlyOne(mongo.db(), orgId, [...beforeDrop, ...afterDrop, ...more]);
  });

  it('a collection dropped in one run and recreated before the next: the next run dispatches the new documents', async () => {
    const orgId = 'dropped2';
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: orgId });
    await drainStream(ctx, orgStream(orgId));
    await insertSubmissions(mongo.db(), 2, { orgId });
    await mongo.db().collection(`submissions_${orgId}`).drop();
    const run = await drainStream(ctx, orgStream(orgId));
    expect(run.recoveries).toContainEqual({ kind: 'invalidate', count: 1 });
    const after = await insertSubmissions(mongo.db(), 4, { orgId });
    await drainStream(ctx, orgStream(orgId));
    const counts = await jobCounts(mongo.db(), { organizationId: orgId });
    expect(after.every((id) => counts.get(id) === 1)).toBe(true);
  });

  it('a crash at any point of a run that meets an invalidate: the next run starts after it, no gap, nothing lost', async () => {
    const clock = new OffsetClock();
    let covered = 0;
    for (let crashAt = 1; crashAt < 60; crashAt++) {
      const orgId = `invcrash${crashAt}`;
      const ctx = await testContext(mongo.db(), mongo.client(), {}, clock);
      await seedWorkflow(mongo.db(), { organizationId: orgId });
      await drainStream(ctx, orgStream(orgId));
      const before = await insertSubmissions(mongo.db(), 4, { orgId });
      await mongo.db().collection(`submissions_${orgId}`).drop();
      const after = await insertSubmissions(mongo.db(), 3, { orgId });
      const crashing = crashingDb(mongo.db(), crashAt);
      await drainStream({ ...ctx, db: crashing.db }, orgStream(orgId)).catch(() => undefined);
      clock.advance(10 * 60_000);
      for (let i = 0; i < 2; i++) await drainStream(ctx, orgStream(orgId));
      await expectExactlyOne(mongo.db(), orgId, [...before, ...after]);
      // An invalidate token is always saved as one, so no run has to treat it as an invalid token.
      expect((await new CheckpointStore(mongo.db()).get(`org:${orgId}`))?.gapCount, `crash at ${crashAt}`).toBe(0);
      if (!crashing.crashed()) break;
      covered++;
    }
    expect(covered).toBeGreaterThanOrEqual(6);
  });
});
