import { afterAll, describe, expect, it } from 'vitest';
import type { Db } from 'mongodb';
import { clearFailPoints, failCommand, testDbName, useTestDb } from '../support/mongo.js';
import { insertSubmissions, jobCounts, OffsetClock, seedWorkflow, testContext, until } from '../support/context.js';
import { crashingDb } from '../support/crash.js';
import { drainStream } from '../../lib/drain/drain.js';
import { partitionStream } from '../../lib/streams/refs.js';
import { CheckpointStore } from '../../lib/streams/checkpoint.js';
import { COLLECTIONS, ensureIndexes } from '../../lib/data/mongo.js';
import { kickRecovery, recoveryDedupId, recoveryId, runRecovery } from '../../lib/drain/recovery-run.js';
import { scanPartitionGap } from '../../lib/drain/partition-recovery.js';
import { restartStream } from '../../lib/drain/restart.js';
import { drainOne } from '../../lib/drain/one.js';
import { fanOut } from '../../lib/fanout/tick.js';
import { readStatus } from '../../lib/status/report.js';
import { Deadline, systemClock } from '../../lib/platform/clock.js';
import { LeaseLostError } from '../../lib/platform/errors.js';
import type { AppContext } from '../../lib/platform/context.js';
import { RecordingPublisher } from '../support/publisher.js';

/**
 * Issue 9 point 6: a partition's recovery scan runs under its own lease (`recovery:partition:{p}/{P}`),
 * so the live stream goes on from a fresh resume point while the gap is scanned. History loss is
 * injected the way mongod allows it (failCommand on aggregate with 286); the recovery is held back by
 * giving the context a recovery port that only records the requests.
 */
const mongo = useTestDb('partition_recovery');
const dbs: Db[] = [];
afterAll(async () => {
  await Promise.all(dbs.map((db) => db.dropDatabase().catch(() => undefined)));
});

async function freshDb(): Promise<Db> {
  const db = mongo.client().db(testDbName('prec'));
  dbs.push(db);
  await ensureIndexes(db);
  return db;
}

const DATABASE = { STREAM_LAYOUT: 'database' };
const stream = partitionStream(0, 1) as Extract<ReturnType<typeof partitionStream>, { kind: 'partition' }>;
const RID = recoveryId(stream);

/** A context whose recovery port records the partitions asked for and runs nothing (the recovery is held back). */
function heldBack(ctx: AppContext): { ctx: AppContext; asked: string[] } {
  const asked: string[] = [];
  return { ctx: { ...ctx, runRecoveryNow: (p) => void asked.push(p.id) }, asked };
}

/** Drain the partition once while the server reports its history lost (286) on the next aggregate. */
async function drainWithHistoryLost(ctx: AppContext) {
  await failCommand(mongo.client(), { failCommands: ['aggregate'], errorCode: 286, errorLabels: ['NonResumableChangeStreamError'] });
  try {
    return await drainStream(ctx, stream);
  } finally {
    await clearFailPoints(mongo.client());
  }
}

async function expectOneJobEach(db: Db, ids: string[]): Promise<void> {
  const counts = await jobCounts(db);
  const wrong = ids.filter((id) => counts.get(id) !== 1).map((id) => `${id}:${counts.get(id) ?? 0}`);
  expect(wrong).toEqual([]);
}

describe('history lost on a partition: the live stream goes on, the gap is recovered apart', () => {
  it('new submissions get jobs while the recovery is held back; the recovery then scans the gap once', async () => {
    const db = await freshDb();
    const base = await testContext(db, mongo.client(), DATABASE);
    const { ctx, asked } = heldBack(base);
    const orgs = ['live-a', 'live-b', 'live-c'];
    for (const org of orgs) await seedWorkflow(db, { organizationId: org });
    await drainStream(ctx, stream);
    const lost: string[] = [];
    for (const org of orgs) lost.push(...(await insertSubmissions(db, 20, { orgId: org })));

    const first = await drainWithHistoryLost(ctx);
    expect(first.status).toBe('completed');
    expect(first.recoveries).toEqual([{ kind: 'history_lost', count: 1 }]);
    expect(first.recoveryKicks).toBeGreaterThanOrEqual(1);
    expect(asked).toContain(stream.id);
    const store = new CheckpointStore(db);
    const partitionCp = await store.get(stream.id);
    // The partition took a fresh resume point at once and carries no recovery itself.
    expect(partitionCp?.recovery).toBeNull();
    expect(partitionCp?.token).not.toBeNull();
    expect(partitionCp?.gapCount).toBe(0);
    const rec = await store.get(RID);
    expect(rec?.pending).toHaveLength(1);
    expect(rec?.pending?.[0]).toMatchObject({ kind: 'history_lost' });
    // Nothing of the gap was scanned by the drain: the window waits for its recovery.
    const before = await jobCounts(db);
    expect(lost.filter((id) => before.has(id))).toEqual([]);

    // The live stream serves new submissions while the window is still pending.
    const fresh: string[] = [];
    for (const org of orgs) fresh.push(...(await insertSubmissions(db, 3, { orgId: org })));
    const live = await drainStream(ctx, stream);
    expect(live.recoveries).toEqual([]);
    expect(live.jobsCreated).toBe(fresh.length);
    await expectOneJobEach(db, fresh);
    expect((await store.get(RID))?.pending).toHaveLength(1);

    // Status: the recovery row is recovering with its windows; the partition keeps draining.
    const status = await readStatus(ctx);
    const recRow = status.streams.find((s) => s.id === RID);
    expect(recRow).toMatchObject({ state: 'recovering', recovery: { windows: 1, current: null } });
    const partRow = status.streams.find((s) => s.id === stream.id);
    expect(partRow?.state).not.toBe('recovering');
    expect(partRow?.recovery).toBeUndefined();

    const run = await runRecovery(ctx, stream);
    expect(run.run.status).toBe('completed');
    expect(run.windowsDone).toBe(1);
    expect(run.windowsLeft).toBe(0);
    await expectOneJobEach(db, [...lost, ...fresh]);
    expect(await db.collection(COLLECTIONS.jobs).countDocuments()).toBe(lost.length + fresh.length);
    const after = await store.get(stream.id);
    expect(after?.gapCount).toBe(1);
    // The scan reaches RECOVERY_SKEW_MS past the window: the fresh submissions are seen again, as duplicates.
    expect(after?.gaps[0]).toMatchObject({ reason: 'history_lost', count: lost.length + fresh.length, jobsCreated: lost.length });
    const done = await store.get(RID);
    expect(done?.recovery).toBeNull();
    expect(done?.pending).toEqual([]);
    expect(done?.state).toBe('idle');
    const settled = (await readStatus(ctx)).streams.find((s) => s.id === RID);
    expect(settled?.state).toBe('idle');
    expect(settled?.recovery).toBeUndefined();
    // Nothing left: a further run takes no lease.
    expect((await runRecovery(ctx, stream)).run).toMatchObject({ status: 'skipped', stoppedBy: 'idle' });
  });

  it('in the same pass, the live stream judges what follows the fresh point by the workflows in force there (one created during the gap)', async () => {
    const db = await freshDb();
    const ctx = heldBack(await testContext(db, mongo.client(), DATABASE)).ctx;
    await seedWorkflow(db, { organizationId: 'before-gap' });
    await drainStream(ctx, stream);
    // Created while the stream is down: its insert is in the history the stream loses. Cluster
    // times and ObjectId times have seconds precision: create it in a later second than the saved
    // token's, so the registry in force at the token cannot have it.
    const saved = (await new CheckpointStore(db).get(stream.id))!.tokenTime!.getTime();
    await until(async () => Date.now() >= saved + 1_000, 'the next second of the cluster clock');
    await seedWorkflow(db, { organizationId: 'in-gap' });
    const lost = await insertSubmissions(db, 2, { orgId: 'in-gap' });
    await failCommand(mongo.client(), { failCommands: ['aggregate'], errorCode: 286, errorLabels: ['NonResumableChangeStreamError'] });
    let armed = true;
    try {
      // One pass that keeps reading after the handover (a relay window).
      const pass = drainStream(ctx, stream, { windowMs: 3_000, hooks: { continuous: true } });
      const store = new CheckpointStore(db);
      await until(async () => (await store.get(RID))?.pending?.length === 1, 'the window to be handed over');
      await clearFailPoints(mongo.client());
      armed = false;
      const live = await insertSubmissions(db, 3, { orgId: 'in-gap' });
      const run = await pass;
      expect(run.recoveries).toEqual([{ kind: 'history_lost', count: 1 }]);
      // The recovery is held back: these jobs come from the live pass, judged with the new workflow.
      await expectOneJobEach(db, live);
      const counts = await jobCounts(db);
      expect(lost.filter((id) => counts.has(id))).toEqual([]);
      await runRecovery(ctx, stream);
      await expectOneJobEach(db, [...lost, ...live]);
    } finally {
      if (armed) await clearFailPoints(mongo.client());
    }
  });

  it('the scan completes over several invocations with a crash in between: it resumes from its progress, 0 lost, 0 duplicated', async () => {
    const db = await freshDb();
    const clock = new OffsetClock();
    const ctx = heldBack(await testContext(db, mongo.client(), DATABASE, clock)).ctx;
    const orgs = Array.from({ length: 4 }, (_, i) => `multi${i}`);
    for (const org of orgs) await seedWorkflow(db, { organizationId: org });
    await drainStream(ctx, stream);
    const lost: string[] = [];
    for (const org of orgs) lost.push(...(await insertSubmissions(db, 250, { orgId: org })));
    await drainWithHistoryLost(ctx);
    const store = new CheckpointStore(db);

    // A clock that runs 150 ms per read makes a 1.5 s recovery window end inside the scan.
    let ticks = 0;
    const slow = { ...ctx, clock: { now: () => clock.now() + 150 * ticks++, sleep: systemClock.sleep } };
    const partial = await runRecovery(slow, stream, { windowMs: 1500, continueAfter: false });
    expect(partial.run).toMatchObject({ status: 'completed', stoppedBy: 'deadline', busy: true });
    expect(partial.windowsDone).toBe(0);
    expect(partial.windowsLeft).toBe(1);
    const progress = (await store.get(RID))?.recovery;
    expect(progress?.scanned).toBeGreaterThan(0);
    expect(progress!.scanned).toBeLessThan(lost.length);
    expect((await store.get(RID))?.state).toBe('recovering');

    // The next invocation dies after a few database calls (no release: its lease must expire).
    const crashing = crashingDb(db, 12);
    await runRecovery({ ...ctx, db: crashing.db }, stream, { continueAfter: false }).catch(() => undefined);
    expect(crashing.crashed()).toBe(true);
    // Held: a run now is refused until the dead invocation's lease expires.
    expect((await runRecovery(ctx, stream, { continueAfter: false })).run.stoppedBy).toBe('leased');
    clock.advance(10 * 60_000);

    let runs = 0;
    while ((await store.get(RID))?.recovery && runs < 20) {
      const r = await runRecovery(ctx, stream, { continueAfter: false });
      expect(r.run.status).toBe('completed');
      runs++;
    }
    await expectOneJobEach(db, lost);
    expect(await db.collection(COLLECTIONS.jobs).countDocuments()).toBe(lost.length);
    const cp = await store.get(stream.id);
    expect(cp?.gapCount).toBe(1);
    // Counted from saved progress: a scan that started over would count more than there are.
    expect(cp?.gaps[0]).toMatchObject({ reason: 'history_lost', count: lost.length, jobsCreated: lost.length });
  });

  it('two recoveries racing: one holds the lease, and a holder whose lease was taken over cannot write progress (fence)', async () => {
    const db = await freshDb();
    const clock = new OffsetClock();
    const ctx = heldBack(await testContext(db, mongo.client(), DATABASE, clock)).ctx;
    await seedWorkflow(db, { organizationId: 'race' });
    await drainStream(ctx, stream);
    const lost = await insertSubmissions(db, 40, { orgId: 'race' });
    await drainWithHistoryLost(ctx);
    const store = new CheckpointStore(db);

    // A first recovery takes the lease and the window, then stalls past its lease.
    const stale = await store.acquire({ id: RID, orgId: null }, 'stale', new Date(clock.now()), new Date(clock.now() + 1_000));
    expect(stale).not.toBeNull();
    const window = await store.takePendingRecovery(stale!, new Date(clock.now()));
    expect(window).not.toBeNull();
    expect((await runRecovery(ctx, stream, { continueAfter: false })).run.stoppedBy).toBe('leased');
    clock.advance(60_000);

    // Two recoveries start at once: exactly one scans, the other finds the lease held (or nothing left).
    const [a, b] = await Promise.all([runRecovery(ctx, stream, { continueAfter: false }), runRecovery(ctx, stream, { continueAfter: false })]);
    expect(a.windowsDone + b.windowsDone).toBe(1);
    expect([a, b].filter((r) => r.run.status === 'completed' && r.windowsDone === 1)).toHaveLength(1);
    const loser = [a, b].find((r) => r.windowsDone === 0)!;
    expect(loser.run.status).toBe('skipped');
    expect(['leased', 'idle']).toContain(loser.run.stoppedBy);
    const winner = await store.get(RID);
    expect(winner?.recovery).toBeNull();

    // The stale holder wakes up: its progress write is refused, nothing of the winner's state changes.
    await expect(
      scanPartitionGap(ctx, { stream, store, lease: stale!, runId: 'stale' }, window!, Deadline.after(clock, 30_000)),
    ).rejects.toBeInstanceOf(LeaseLostError);
    const unchanged = await store.get(RID);
    expect(unchanged?.recovery).toBeNull();
    expect(unchanged?.fence).toBe(winner?.fence);
    await expectOneJobEach(db, lost);
    expect((await store.get(stream.id))?.gapCount).toBe(1);
  });

  it('a second loss while a recovery is pending queues a second window; nothing of the first is overwritten', async () => {
    const db = await freshDb();
    const ctx = heldBack(await testContext(db, mongo.client(), DATABASE)).ctx;
    const orgs = ['twice-a', 'twice-b'];
    for (const org of orgs) await seedWorkflow(db, { organizationId: org });
    await drainStream(ctx, stream);
    const lost1: string[] = [];
    for (const org of orgs) lost1.push(...(await insertSubmissions(db, 150, { orgId: org })));
    await drainWithHistoryLost(ctx);
    const store = new CheckpointStore(db);

    // The first window's recovery starts and stops inside its scan (a clock of 150 ms per read).
    let ticks = 0;
    const slow = { ...ctx, clock: { now: () => Date.now() + 150 * ticks++, sleep: systemClock.sleep } };
    const partial = await runRecovery(slow, stream, { windowMs: 1500, continueAfter: false });
    expect(partial.windowsDone).toBe(0);
    const inProgress = (await store.get(RID))?.recovery;
    expect(inProgress?.scanned).toBeGreaterThan(0);

    const lost2: string[] = [];
    for (const org of orgs) lost2.push(...(await insertSubmissions(db, 10, { orgId: org })));
    const second = await drainWithHistoryLost(ctx);
    expect(second.recoveries).toEqual([{ kind: 'history_lost', count: 1 }]);
    const both = await store.get(RID);
    // The window being scanned keeps its id and progress; the new one is queued behind it.
    expect(both?.recovery).toMatchObject({ id: inProgress!.id, scanned: inProgress!.scanned });
    expect(both?.pending).toHaveLength(1);
    expect(both?.pending?.[0]?.id).not.toBe(inProgress!.id);
    expect(both!.pending![0]!.to.getTime()).toBeGreaterThan(inProgress!.to.getTime());
    expect((await readStatus(ctx)).streams.find((s) => s.id === RID)?.recovery).toMatchObject({ windows: 2, current: { kind: 'history_lost' } });

    let runs = 0;
    while (runs < 20) {
      const r = await runRecovery(ctx, stream, { continueAfter: false });
      runs++;
      if (r.windowsLeft === 0) break;
    }
    await expectOneJobEach(db, [...lost1, ...lost2]);
    expect(await db.collection(COLLECTIONS.jobs).countDocuments()).toBe(lost1.length + lost2.length);
    const cp = await store.get(stream.id);
    expect(cp?.gapCount).toBe(2);
    expect(cp?.gaps.map((g) => g.reason)).toEqual(['history_lost', 'history_lost']);
  });

  it('a second loss queues behind a window nobody has started yet (two pending windows, scanned in order)', async () => {
    const db = await freshDb();
    const ctx = heldBack(await testContext(db, mongo.client(), DATABASE)).ctx;
    await seedWorkflow(db, { organizationId: 'queued' });
    await drainStream(ctx, stream);
    const lost1 = await insertSubmissions(db, 5, { orgId: 'queued' });
    await drainWithHistoryLost(ctx);
    const lost2 = await insertSubmissions(db, 5, { orgId: 'queued' });
    await drainWithHistoryLost(ctx);
    const store = new CheckpointStore(db);
    const rec = await store.get(RID);
    expect(rec?.pending).toHaveLength(2);
    expect(rec!.pending![0]!.to.getTime()).toBeLessThanOrEqual(rec!.pending![1]!.to.getTime());
    const run = await runRecovery(ctx, stream);
    expect(run.windowsDone).toBe(2);
    await expectOneJobEach(db, [...lost1, ...lost2]);
    expect((await store.get(stream.id))?.gapCount).toBe(2);
  });
});

describe('a crash at every database call of a drain that hands a window over', () => {
  it('after a crash at any operation (window queued, token saved, recovery cleared …), the next drains and recovery runs give exactly one job per submission', async () => {
    const db = await freshDb();
    const clock = new OffsetClock();
    const ctx = heldBack(await testContext(db, mongo.client(), DATABASE, clock)).ctx;
    await seedWorkflow(db, { organizationId: 'hcrash-base' });
    await drainStream(ctx, stream);
    let covered = 0;
    for (let crashAt = 1; crashAt < 60; crashAt++) {
      const orgId = `hcrash${crashAt}`;
      await seedWorkflow(db, { organizationId: orgId });
      await drainStream(ctx, stream);
      const lost = await insertSubmissions(db, 8, { orgId });
      const crashing = crashingDb(db, crashAt);
      await failCommand(mongo.client(), { failCommands: ['aggregate'], errorCode: 286, errorLabels: ['NonResumableChangeStreamError'] });
      try {
        await drainStream({ ...ctx, db: crashing.db }, stream).catch(() => undefined);
      } finally {
        await clearFailPoints(mongo.client());
      }
      clock.advance(10 * 60_000); // the dead invocation's lease expires
      const after = await insertSubmissions(db, 2, { orgId });
      for (let i = 0; i < 2; i++) await drainStream(ctx, stream);
      for (let i = 0; i < 10; i++) if ((await runRecovery(ctx, stream, { continueAfter: false })).windowsLeft === 0) break;
      await expectOneJobEach(db, [...lost, ...after]);
      expect(await db.collection(COLLECTIONS.jobs).countDocuments({ organizationId: orgId })).toBe(lost.length + after.length);
      if (!crashing.crashed()) break;
      covered++;
    }
    expect(covered).toBeGreaterThanOrEqual(8);
  });
});

describe('a server that refuses every resume point (280 on every aggregate)', () => {
  it('each partition drain queues one window and ends; once the server takes aggregates again, nothing is lost', async () => {
    const db = await freshDb();
    const ctx = heldBack(await testContext(db, mongo.client(), DATABASE)).ctx;
    await seedWorkflow(db, { organizationId: 'refusing' });
    await drainStream(ctx, stream);
    const all: string[] = [];
    all.push(...(await insertSubmissions(db, 3, { orgId: 'refusing' })));
    await failCommand(mongo.client(), { failCommands: ['aggregate'], errorCode: 280 }, 'alwaysOn');
    const runs = [];
    try {
      for (let i = 0; i < 3; i++) {
        if (i > 0) all.push(...(await insertSubmissions(db, 2, { orgId: 'refusing' })));
        runs.push(await drainStream(ctx, stream));
      }
    } finally {
      await clearFailPoints(mongo.client());
    }
    expect(runs.map((r) => r.status)).toEqual(['completed', 'completed', 'completed']);
    const store = new CheckpointStore(db);
    expect((await store.get(RID))?.pending).toHaveLength(3);
    expect((await store.get(stream.id))?.state).not.toBe('failing');
    const later = await insertSubmissions(db, 2, { orgId: 'refusing' });
    await drainStream(ctx, stream);
    await expectOneJobEach(db, later);
    const recovered = await runRecovery(ctx, stream);
    expect(recovered.windowsDone).toBe(3);
    await expectOneJobEach(db, [...all, ...later]);
    expect(await db.collection(COLLECTIONS.jobs).countDocuments()).toBe(all.length + later.length);
    expect((await store.get(stream.id))?.gapsByReason).toMatchObject({ invalid_token: 3 });
  });
});

describe('operator restart of a partition', () => {
  it('the next drain opens at the restart time and hands the skipped window to the recovery', async () => {
    const db = await freshDb();
    const ctx = heldBack(await testContext(db, mongo.client(), DATABASE)).ctx;
    await seedWorkflow(db, { organizationId: 'restarted' });
    await drainStream(ctx, stream);
    const skipped = await insertSubmissions(db, 7, { orgId: 'restarted' });
    const restart = await restartStream(ctx, stream.id, 'now');
    expect(restart.streamId).toBe(stream.id);
    const store = new CheckpointStore(db);
    expect((await store.get(stream.id))?.recovery).toMatchObject({ kind: 'restart' });

    const fresh = await insertSubmissions(db, 4, { orgId: 'restarted' });
    const run = await drainStream(ctx, stream);
    expect(run.recoveries).toEqual([{ kind: 'restart', count: 1 }]);
    const cp = await store.get(stream.id);
    expect(cp?.recovery).toBeNull();
    expect(cp?.token).not.toBeNull();
    await expectOneJobEach(db, fresh);
    expect((await store.get(RID))?.pending?.[0]).toMatchObject({ kind: 'restart', to: restart.at });

    // The stream opens at the restart's cluster time (seconds precision, so it may deliver some of
    // the skipped ones too): what it did not deliver is created by the recovery, once.
    const recovered = await runRecovery(ctx, stream);
    expect(recovered.windowsDone).toBe(1);
    expect(run.jobsCreated + recovered.run.jobsCreated).toBe(skipped.length + fresh.length);
    await expectOneJobEach(db, [...skipped, ...fresh]);
    expect(await db.collection(COLLECTIONS.jobs).countDocuments()).toBe(skipped.length + fresh.length);
    expect((await store.get(stream.id))?.gaps[0]).toMatchObject({ reason: 'restart', count: skipped.length + fresh.length });
  });
});

describe('how a recovery run is started', () => {
  it('through QStash: one message per recovery fence to /api/drain, however many drains ask; none while one holds the lease', async () => {
    const db = await freshDb();
    const clock = new OffsetClock();
    const ctx = heldBack(await testContext(db, mongo.client(), { ...DATABASE, PUBLIC_BASE_URL: 'http://recovery.test' }, clock)).ctx;
    await seedWorkflow(db, { organizationId: 'kicked' });
    await drainStream(ctx, stream);
    const lost = await insertSubmissions(db, 3, { orgId: 'kicked' });
    const publisher = new RecordingPublisher();
    const viaQStash = { ...ctx, publisher };
    expect(await kickRecovery(viaQStash, stream)).toMatchObject({ kicked: false, reason: 'nothing' });
    await drainWithHistoryLost(viaQStash);
    // The drain that handed the window over asked; a later drain asks again and is deduplicated.
    await drainStream(viaQStash, stream);
    expect(publisher.messages.filter((m) => m.body.streamId === RID)).toHaveLength(1);
    const fence = (await new CheckpointStore(db).get(RID))!.fence;
    expect(publisher.messages[0]).toMatchObject({ body: { streamId: RID }, deduplicationId: recoveryDedupId(RID, fence) });
    expect(publisher.messages[0]!.url).toMatch(/\/api\/drain$/);
    // While a recovery holds the lease nobody asks; once it expired unreleased, the next ask carries the new fence.
    const store = new CheckpointStore(db);
    expect(await store.acquire({ id: RID, orgId: null }, 'other', new Date(clock.now()), new Date(clock.now() + 5_000))).not.toBeNull();
    expect(await kickRecovery(viaQStash, stream)).toMatchObject({ kicked: false, reason: 'leased' });
    clock.advance(60_000);
    await drainStream(viaQStash, stream);
    expect(publisher.messages.filter((m) => m.body.streamId === RID)).toHaveLength(2);
    expect(publisher.messages[1]).toMatchObject({ body: { streamId: RID }, deduplicationId: recoveryDedupId(RID, fence + 1) });

    // The message arrives: /api/drain runs the recovery (no work left, so no next message).
    const answer = await drainOne(viaQStash, { streamId: RID }, 'qstash');
    expect(answer.recovery).toMatchObject({ windowsDone: 1, windowsLeft: 0, next: null });
    await expectOneJobEach(db, lost);
    expect(publisher.messages.filter((m) => m.body.streamId === RID)).toHaveLength(2);
    await expect(drainOne(viaQStash, { streamId: 'recovery:org:x' }, 'qstash')).rejects.toMatchObject({ status: 400 });
    await expect(drainOne(viaQStash, { streamId: 'recovery:partition:2/2' }, 'qstash')).rejects.toMatchObject({ status: 400 });
    // A partition of another P (windows queued before P changed) is still served; with nothing queued, nothing happens.
    expect((await drainOne(viaQStash, { streamId: 'recovery:partition:1/2' }, 'qstash')).run).toMatchObject({ status: 'skipped', stoppedBy: 'idle' });
    expect(await new CheckpointStore(db).get('recovery:partition:1/2')).toBeNull();
  });

  it('the cron tick runs an abandoned recovery (in-process, no QStash) once its lease expired', async () => {
    const db = await freshDb();
    const clock = new OffsetClock();
    const ctx = await testContext(db, mongo.client(), { ...DATABASE, RELAY: 'tick' }, clock);
    await seedWorkflow(db, { organizationId: 'abandoned' });
    await drainStream(ctx, stream);
    const lost = await insertSubmissions(db, 6, { orgId: 'abandoned' });
    await drainWithHistoryLost(ctx);
    // A recovery run took the lease and died.
    const store = new CheckpointStore(db);
    expect(await store.acquire({ id: RID, orgId: null }, 'dead', new Date(clock.now()), new Date(clock.now() + 5_000))).not.toBeNull();
    const held = await fanOut(ctx);
    expect(held.recoveries?.[0]).toMatchObject({ streamId: RID, outcome: { kicked: false, reason: 'leased' } });
    clock.advance(60_000);
    const tick = await fanOut(ctx);
    expect(tick.recoveries?.[0]).toMatchObject({ streamId: RID, outcome: { reason: 'no_runner' } });
    expect(tick.runs.find((r) => r.streamId === RID)).toMatchObject({ status: 'completed', stoppedBy: 'idle' });
    await expectOneJobEach(db, lost);
    expect((await store.get(stream.id))?.gapCount).toBe(1);
  });

  it('windows queued before P changed are still scanned by the tick', async () => {
    const db = await freshDb();
    const ctx = heldBack(await testContext(db, mongo.client(), DATABASE)).ctx;
    await seedWorkflow(db, { organizationId: 'former-p' });
    await drainStream(ctx, stream);
    const lost = await insertSubmissions(db, 5, { orgId: 'former-p' });
    await drainWithHistoryLost(ctx);
    const twoPartitions = await testContext(db, mongo.client(), { ...DATABASE, STREAM_PARTITIONS: '2', RELAY: 'tick' });
    const tick = await fanOut(twoPartitions);
    expect(tick.runs.find((r) => r.streamId === RID)).toMatchObject({ status: 'completed', recoveries: [{ kind: 'history_lost', count: 1 }] });
    const store = new CheckpointStore(db);
    expect((await store.get(RID))?.pending).toEqual([]);
    expect((await store.get(stream.id))?.gapCount).toBe(1);
    await expectOneJobEach(db, lost);
  });
});
