import { afterAll, describe, expect, it } from 'vitest';
import { ObjectId, type Db } from 'mongodb';
import { clearFailPoints, failCommand, testDbName, useTestDb } from '../support/mongo.js';
import { insertSubmissions, jobCounts, OffsetClock, seedWorkflow, testContext, until } from '../support/context.js';
import { crashingDb } from '../support/crash.js';
import { expectExactlyOne } from '../support/assert.js';
import { drainStream } from '../../lib/drain/drain.js';
import { keepWarmRegistry, takeWarmRegistry } from '../../lib/drain/partition-events.js';
import { loadWorkflows } from '../../lib/dispatch/workflows.js';
import { listStreams, orgStream, partitionStream, platformStreamOf, resolveStream } from '../../lib/streams/refs.js';
import { hashedIndexKey, partitionOf, primeServerVersion } from '../../lib/streams/partition.js';
import { CheckpointStore } from '../../lib/streams/checkpoint.js';
import { COLLECTIONS, ensureIndexes, submissionsCollection } from '../../lib/data/mongo.js';
import { reconcileSince } from '../../lib/drain/reconcile.js';
import { redispatchSubmission } from '../../lib/dispatch/explicit.js';
import { Deadline, systemClock } from '../../lib/platform/clock.js';
import { recoveryId, runRecovery } from '../../lib/drain/recovery-run.js';
import type { WorkflowDoc } from '../../lib/data/documents.js';

/**
 * The `database` stream layout: partition streams over the whole platform database, events routed
 * to their organization in the drain, the registry following `workflows` changes in stream order.
 * Each test gets its own database: a partition stream sees every collection of its database.
 */
const mongo = useTestDb('partitions');
const dbs: Db[] = [];
afterAll(async () => {
  await Promise.all(dbs.map((db) => db.dropDatabase().catch(() => undefined)));
});

async function freshDb(): Promise<Db> {
  const db = mongo.client().db(testDbName('part'));
  dbs.push(db);
  await ensureIndexes(db);
  return db;
}

const DATABASE = { STREAM_LAYOUT: 'database' };

async function jobsOf(db: Db, filter: Record<string, unknown> = {}) {
  return db.collection(COLLECTIONS.jobs).find(filter).toArray();
}

describe('partition function: partitionOf agrees with the server', () => {
  it("computes mongod's $toHashedIndexKey for a few hundred collection names", async () => {
    const db = await freshDb();
    const names = [
      ...Array.from({ length: 250 }, (_, i) => submissionsCollection(`org-${i}`)),
      'global_submissions',
      'form_submissions',
      'workflows',
      'submissions_Ünïcode_名前',
      '',
    ];
    await db.collection('names').insertMany(names.map((name, i) => ({ _id: i, name }) as never));
    const rows = await db
      .collection('names')
      .aggregate<{ _id: number; name: string; h: { toString(): string } }>([{ $project: { name: 1, h: { $toHashedIndexKey: '$name' } } }, { $sort: { _id: 1 } }])
      .toArray();
    expect(rows).toHaveLength(names.length);
    for (const row of rows) expect(hashedIndexKey(row.name).toString()).toBe(row.h.toString());
    // The server's $mod of the hash (sign kept) lands on p or p - P for partitionOf's p.
    const P = 7;
    const mods = await db
      .collection('names')
      .aggregate<{ name: string; m: unknown }>([{ $project: { name: 1, m: { $mod: [{ $toHashedIndexKey: '$name' }, P] } } }])
      .toArray();
    for (const { name, m } of mods) {
      const p = partitionOf(name, P);
      expect([p, p - P]).toContain(Number(m));
    }
  });

  it('pins known values of the hash', () => {
    // The $toHashedIndexKey documentation page's example: "string to hash" → Long("763543691661428748").
    expect(hashedIndexKey('string to hash')).toBe(763543691661428748n);
  });
});

describe('database layout: routing, rollout and the registry inside one stream', () => {
  it('routes submissions_{orgId} to that organization and legacy shared documents to their organizationId', async () => {
    const db = await freshDb();
    const ctx = await testContext(db, mongo.client(), DATABASE);
    await seedWorkflow(db, { organizationId: 'acme' });
    await seedWorkflow(db, { organizationId: 'beta' });
    const stream = partitionStream(0, 1);
    await drainStream(ctx, stream); // a token after the workflows
    const acme = await insertSubmissions(db, 3, { orgId: 'acme' });
    const beta = await insertSubmissions(db, 2, { orgId: 'beta', collection: 'global_submissions' });
    const formShared = await insertSubmissions(db, 1, { orgId: 'acme', collection: 'form_submissions' });
    await db.collection('not_submissions').insertOne({ organizationId: 'acme', formId: 'contact' });
    // A collection named for one organization serves that organization, whatever its documents say.
    await db.collection(submissionsCollection('beta')).insertOne({ _id: new ObjectId(), organizationId: 'acme', formId: 'contact', submittedAt: new Date() });
    const run = await drainStream(ctx, stream);
    expect(run).toMatchObject({ status: 'completed', jobsCreated: 7, duplicates: 0 });
    const counts = await jobCounts(db);
    for (const id of [...acme, ...beta, ...formShared]) expect(counts.get(id)).toBe(1);
    expect(await db.collection(COLLECTIONS.jobs).countDocuments({ organizationId: 'acme' })).toBe(4);
    expect(await db.collection(COLLECTIONS.jobs).countDocuments({ organizationId: 'beta' })).toBe(3);
    expect(await db.collection(COLLECTIONS.jobs).countDocuments({ source: stream.id })).toBe(7);
  });

  it('checks the rollout mode per event: an organization in explicit mode gets no stream job', async () => {
    const db = await freshDb();
    const ctx = await testContext(db, mongo.client(), { ...DATABASE, CHANGE_STREAMS_ALL_ORGS: 'false', CHANGE_STREAMS_ORG_IDS: 'on' });
    await seedWorkflow(db, { organizationId: 'on' });
    await seedWorkflow(db, { organizationId: 'off' });
    const stream = partitionStream(0, 1);
    await drainStream(ctx, stream);
    const on = await insertSubmissions(db, 2, { orgId: 'on' });
    await insertSubmissions(db, 2, { orgId: 'off' });
    await insertSubmissions(db, 1, { orgId: 'off', collection: 'global_submissions' });
    const run = await drainStream(ctx, stream);
    expect(run.jobsCreated).toBe(2);
    expect([...(await jobCounts(db)).keys()].sort()).toEqual([...on].sort());
  });

  it('judges each event by the registry in force at its place in the stream (workflow created, then paused, mid-backlog)', async () => {
    const db = await freshDb();
    const ctx = await testContext(db, mongo.client(), DATABASE);
    await seedWorkflow(db, { organizationId: 'other' });
    const stream = partitionStream(0, 1);
    await drainStream(ctx, stream);
    const before = await insertSubmissions(db, 2, { orgId: 'late' });
    const wf = await seedWorkflow(db, { organizationId: 'late' });
    const during = await insertSubmissions(db, 3, { orgId: 'late' });
    await db.collection<WorkflowDoc>(COLLECTIONS.workflows).updateOne({ _id: wf._id }, { $set: { status: 'paused', updatedAt: new Date() } });
    const after = await insertSubmissions(db, 2, { orgId: 'late' });
    // One backlog, read in one run: the registry changes exactly where the workflow did.
    const run = await drainStream(ctx, stream);
    expect(run.status).toBe('completed');
    const counts = await jobCounts(db, { organizationId: 'late' });
    expect([...counts.keys()].sort()).toEqual([...during].sort());
    for (const id of [...before, ...after]) expect(counts.has(id)).toBe(false);
    // Both transitions are in the timeline, once each.
    const timeline = await db.collection(COLLECTIONS.workflowTimeline).find({ workflowId: wf._id }).sort({ atPos: 1 }).toArray();
    expect(timeline.map((t) => t.active)).toEqual([true, false]);
  });

  it('a backlog replayed after a crash is judged at each event’s time, not now', async () => {
    const db = await freshDb();
    const ctx = await testContext(db, mongo.client(), DATABASE);
    const wf = await seedWorkflow(db, { organizationId: 'replay' });
    const stream = partitionStream(0, 1);
    await drainStream(ctx, stream);
    const first = await insertSubmissions(db, 2, { orgId: 'replay' });
    await db.collection<WorkflowDoc>(COLLECTIONS.workflows).updateOne({ _id: wf._id }, { $set: { status: 'paused', updatedAt: new Date() } });
    // The pause is known now, before the drain reads the backlog: the events before it still count.
    const run = await drainStream(ctx, stream);
    expect(run.jobsCreated).toBe(2);
    expect([...(await jobCounts(db)).keys()].sort()).toEqual([...first].sort());
  });

  it('a write that fails after a workflow change was read rewinds the registry with the stream: events read again are judged as saved', async () => {
    const db = await freshDb();
    const ctx = await testContext(db, mongo.client(), DATABASE);
    await seedWorkflow(db, { organizationId: 'other' });
    const stream = partitionStream(0, 1);
    await drainStream(ctx, stream);
    const before = await insertSubmissions(db, 2, { orgId: 'rewind' });
    await seedWorkflow(db, { organizationId: 'rewind' });
    const after = await insertSubmissions(db, 2, { orgId: 'rewind' });
    // The batch write after the workflow's creation fails past the driver's retry (the job write and
    // the timeline write, one retry each): the drain reopens from the token saved before the backlog.
    await failCommand(mongo.client(), { failCommands: ['update'], closeConnection: true }, { times: 4 });
    const run = await drainStream(ctx, stream);
    await clearFailPoints(mongo.client());
    expect(run.reconnects).toBeGreaterThanOrEqual(1);
    expect(run.status).toBe('completed');
    const counts = await jobCounts(db, { organizationId: 'rewind' });
    expect([...counts.keys()].sort()).toEqual([...after].sort());
    for (const id of before) expect(counts.has(id)).toBe(false);
    expect(await db.collection(COLLECTIONS.workflowTimeline).countDocuments({ organizationId: 'rewind' })).toBe(1);
  });

  it('records a backlog of workflow changes in one timeline write per batch', async () => {
    const db = await freshDb();
    const ctx = await testContext(db, mongo.client(), DATABASE);
    await seedWorkflow(db, { organizationId: 'other' });
    const stream = partitionStream(0, 1);
    await drainStream(ctx, stream);
    const orgs = Array.from({ length: 30 }, (_, i) => `many${i}`);
    for (const orgId of orgs) await seedWorkflow(db, { organizationId: orgId });
    const ids = await insertSubmissions(db, 1, { orgId: 'many0' });
    const run = await drainStream(ctx, stream);
    expect(run.status).toBe('completed');
    expect(await db.collection(COLLECTIONS.workflowTimeline).countDocuments({ organizationId: { $in: orgs } })).toBe(30);
    expect([...(await jobCounts(db, { organizationId: 'many0' })).keys()]).toEqual(ids);
    // 30 changes read in one or two batches: far fewer round trips than one write per change.
    expect(run.roundTrips).toBeLessThan(30);
  });

  it('steps over updates no workflow listens to: no dead letter for an update read without its document', async () => {
    const db = await freshDb();
    const ctx = await testContext(db, mongo.client(), DATABASE);
    await seedWorkflow(db, { organizationId: 'edits' }); // on insert only
    const stream = partitionStream(0, 1);
    await drainStream(ctx, stream);
    const [id] = await insertSubmissions(db, 1, { orgId: 'edits' });
    for (let i = 0; i < 3; i++) await db.collection(submissionsCollection('edits')).updateOne({ _id: new ObjectId(id) }, { $set: { 'data.edit': i } });
    await db.collection(submissionsCollection('edits')).replaceOne({ _id: new ObjectId(id) }, { organizationId: 'edits', formId: 'contact', data: {} });
    const run = await drainStream(ctx, stream);
    expect(run.events).toBeGreaterThanOrEqual(5);
    expect(run.deadLettered).toBe(0);
    expect(await db.collection(COLLECTIONS.deadLetters).countDocuments({})).toBe(0);
    expect((await jobsOf(db, { submissionId: id })).map((j) => j.event)).toEqual(['insert']);
  });

  it('reads update documents from the event on once a workflow on updates appears mid-stream', async () => {
    const db = await freshDb();
    const ctx = await testContext(db, mongo.client(), DATABASE);
    await seedWorkflow(db, { organizationId: 'upd' });
    const stream = partitionStream(0, 1);
    await drainStream(ctx, stream);
    const [id] = await insertSubmissions(db, 1, { orgId: 'upd' });
    await seedWorkflow(db, { organizationId: 'upd', formId: 'contact', name: 'on update', trigger: { on: ['update'] } });
    await db.collection(submissionsCollection('upd')).updateOne({ _id: new ObjectId(id) }, { $set: { 'data.x': 1 } });
    const run = await drainStream(ctx, stream);
    expect(run.deadLettered).toBe(0);
    const jobs = await jobsOf(db, { submissionId: id });
    expect(jobs.map((j) => j.event).sort()).toEqual(['insert', 'update']);
  });

  it('a new stream starts where the first workflow came into force: a new organization’s first submissions get jobs', async () => {
    const db = await freshDb();
    const ctx = await testContext(db, mongo.client(), DATABASE);
    await seedWorkflow(db, { organizationId: 'newco' });
    const ids = await insertSubmissions(db, 4, { orgId: 'newco' });
    const run = await drainStream(ctx, partitionStream(0, 1));
    expect(run.jobsCreated).toBe(4);
    const counts = await jobCounts(db);
    for (const id of ids) expect(counts.get(id)).toBe(1);
  });

  it('steps over one dropped collection (no invalidate) and keeps serving the others', async () => {
    const db = await freshDb();
    const ctx = await testContext(db, mongo.client(), DATABASE);
    await seedWorkflow(db, { organizationId: 'keep' });
    await seedWorkflow(db, { organizationId: 'gone' });
    const stream = partitionStream(0, 1);
    await drainStream(ctx, stream);
    await insertSubmissions(db, 1, { orgId: 'gone' });
    await db.collection(submissionsCollection('gone')).drop();
    const keep = await insertSubmissions(db, 2, { orgId: 'keep' });
    const run = await drainStream(ctx, stream);
    expect(run.status).toBe('completed');
    expect(run.recoveries).toEqual([]);
    const counts = await jobCounts(db, { organizationId: 'keep' });
    for (const id of keep) expect(counts.get(id)).toBe(1);
    const cp = await new CheckpointStore(db).get(stream.id);
    expect(cp?.tokenIsInvalidate).toBe(false);
  });

  it('dropDatabase invalidates the stream; it goes on after the invalidate with startAfter', async () => {
    const db = await freshDb();
    const ctx = await testContext(db, mongo.client(), DATABASE);
    await seedWorkflow(db, { organizationId: 'dd' });
    const stream = partitionStream(0, 1);
    await drainStream(ctx, stream);
    const checkpoint = await new CheckpointStore(db).get(stream.id);
    await db.dropDatabase();
    // The checkpoint went with the database: put it back, as a deployment whose store lives elsewhere would have it.
    await db.collection<{ _id: string }>(COLLECTIONS.checkpoints).insertOne({ ...checkpoint!, lease: null } as { _id: string });
    const run = await drainStream(ctx, stream);
    expect(run.status).toBe('completed');
    expect(run.recoveries).toEqual([{ kind: 'invalidate', count: 1 }]);
    await seedWorkflow(db, { organizationId: 'dd' });
    const ids = await insertSubmissions(db, 2, { orgId: 'dd' });
    const after = await drainStream(ctx, stream);
    expect(after.jobsCreated).toBe(2);
    const counts = await jobCounts(db);
    for (const id of ids) expect(counts.get(id)).toBe(1);
  });

  // Neither drop is followed by delete events for the workflows: the registry must forget them itself.
  const drops = [
    {
      what: 'dropDatabase',
      recoveries: [{ kind: 'invalidate', count: 1 }],
      async drop(db: Db, store: CheckpointStore, streamId: string) {
        const checkpoint = await store.get(streamId); // under the open run's lease
        await db.dropDatabase();
        // The checkpoint store outlives the database (as in the test above), lease and fence included.
        await store.collection.insertOne(checkpoint!);
      },
    },
    {
      what: 'the workflows collection dropped',
      recoveries: [],
      async drop(db: Db) {
        await db.collection(COLLECTIONS.workflows).drop();
      },
    },
  ];
  for (const { what, recoveries, drop } of drops) {
    it(`a window open through ${what} forgets the dropped workflows: the ones created again give one job per submission`, async () => {
      const db = await freshDb();
      const ctx = await testContext(db, mongo.client(), DATABASE);
      const old = await seedWorkflow(db, { organizationId: 'ddw' });
      const stream = partitionStream(0, 1);
      await drainStream(ctx, stream);
      const store = new CheckpointStore(db);
      let ids: string[] = [];
      let recreated: WorkflowDoc | undefined;
      let work: Promise<void> | undefined;
      const stop = new AbortController();
      // The run has its registry (with `old`) when it starts reading; the workflows go while it reads.
      const run = drainStream(ctx, stream, {
        windowMs: 30_000,
        hooks: {
          continuous: true,
          signal: stop.signal,
          onFirstRead: () => {
            work = (async () => {
              await drop(db, store, stream.id);
              recreated = await seedWorkflow(db, { organizationId: 'ddw' });
              ids = await insertSubmissions(db, 3, { orgId: 'ddw' });
            })();
          },
        },
      });
      await until(async () => work !== undefined, 'the first read');
      await work;
      // The open run reads the new workflow and the submissions; then it is stopped.
      await until(async () => (await jobCounts(db)).size === ids.length, 'jobs for the submissions written after the drop');
      stop.abort();
      expect((await run).recoveries).toEqual(recoveries);
      await drainStream(ctx, stream);
      const jobs = await jobsOf(db, { submissionId: { $in: ids } });
      expect(jobs.map((j) => j.workflowId)).toEqual(ids.map(() => recreated!._id));
      expect(jobs.some((j) => j.workflowId === old._id)).toBe(false);
    });
  }
});

describe('a relay successor in the same process starts from the registry its predecessor ended with', () => {
  it('is taken once, only at the token it was kept at, and only for its own database and stream', async () => {
    const db = await freshDb();
    const other = await freshDb();
    const stream = partitionStream(0, 1);
    const registry = await loadWorkflows(db, null);
    const token = { _data: '826B0D16650000000A2B0429296E1404' };
    keepWarmRegistry(db, stream, token, registry);
    expect(takeWarmRegistry(other, stream, token)).toBeNull();
    expect(takeWarmRegistry(db, partitionStream(0, 2), token)).toBeNull();
    expect(takeWarmRegistry(db, stream, { _data: '826B0D16650000000B2B0429296E1404' })).toBeNull();
    // A miss drops the kept registry: the checkpoint moved on without this process.
    expect(takeWarmRegistry(db, stream, token)).toBeNull();
    keepWarmRegistry(db, stream, token, registry);
    expect(takeWarmRegistry(db, stream, token)).toBe(registry);
    expect(takeWarmRegistry(db, stream, token)).toBeNull();
    // Collection streams keep nothing.
    keepWarmRegistry(db, orgStream('a'), token, registry);
    expect(takeWarmRegistry(db, orgStream('a'), token)).toBeNull();
  });

  it('consecutive passes with workflow changes between and inside them judge every event as a fresh load would', async () => {
    const db = await freshDb();
    const ctx = await testContext(db, mongo.client(), DATABASE);
    const stream = partitionStream(0, 1);
    const wf = await seedWorkflow(db, { organizationId: 'warm' });
    await drainStream(ctx, stream);
    const on1 = await insertSubmissions(db, 2, { orgId: 'warm' });
    await drainStream(ctx, stream); // ends with the registry of a pass: kept
    await db.collection<WorkflowDoc>(COLLECTIONS.workflows).updateOne({ _id: wf._id }, { $set: { status: 'paused', updatedAt: new Date() } });
    const off = await insertSubmissions(db, 2, { orgId: 'warm' });
    await drainStream(ctx, stream); // starts from the kept registry and follows the pause
    await db.collection<WorkflowDoc>(COLLECTIONS.workflows).updateOne({ _id: wf._id }, { $set: { status: 'active', updatedAt: new Date() } });
    const on2 = await insertSubmissions(db, 2, { orgId: 'warm' });
    await drainStream(ctx, stream);
    const counts = await jobCounts(db, { organizationId: 'warm' });
    expect([...counts.keys()].sort()).toEqual([...on1, ...on2].sort());
    for (const id of off) expect(counts.has(id)).toBe(false);
  });
});

describe('partition split: P = 3', () => {
  it('serves each submission collection by exactly one partition and workflows by all', async () => {
    const db = await freshDb();
    const P = 3;
    const ctx = await testContext(db, mongo.client(), { ...DATABASE, STREAM_PARTITIONS: String(P) });
    const orgs = Array.from({ length: 12 }, (_, i) => `split${i}`);
    for (const org of orgs) await seedWorkflow(db, { organizationId: org });
    const streams = Array.from({ length: P }, (_, p) => partitionStream(p, P));
    expect((await listStreams(ctx)).map((s) => s.id)).toEqual(streams.map((s) => s.id));
    for (const s of streams) await drainStream(ctx, s);
    const ids = new Map<string, string[]>();
    for (const org of orgs) ids.set(org, await insertSubmissions(db, 2, { orgId: org }));
    const shared = await insertSubmissions(db, 3, { orgId: 'split0', collection: 'global_submissions' });
    // A workflow created now reaches every partition's registry.
    const late = await seedWorkflow(db, { organizationId: 'split1', formId: 'late' });
    const lateIds = await insertSubmissions(db, 1, { orgId: 'split1', formId: 'late' });
    for (const s of streams) expect((await drainStream(ctx, s)).status).toBe('completed');

    const counts = await jobCounts(db);
    for (const id of [...[...ids.values()].flat(), ...shared, ...lateIds]) expect(counts.get(id)).toBe(1);
    const jobs = await jobsOf(db);
    const used = new Set<number>();
    for (const org of orgs) {
      const p = partitionOf(submissionsCollection(org), P);
      used.add(p);
      const sources = new Set(jobs.filter((j) => j.organizationId === org && j.formId === 'contact' && !shared.includes(j.submissionId)).map((j) => j.source));
      expect([...sources]).toEqual([`partition:${p}/${P}`]);
      expect(platformStreamOf(ctx.config, org).id).toBe(`partition:${p}/${P}`);
      expect((await resolveStream(ctx, { orgId: org })).id).toBe(`partition:${p}/${P}`);
    }
    expect(used.size).toBeGreaterThan(1); // the names spread over more than one partition
    const sharedSource = new Set(jobs.filter((j) => shared.includes(j.submissionId)).map((j) => j.source));
    expect([...sharedSource]).toEqual([`partition:${partitionOf('global_submissions', P)}/${P}`]);
    // Every partition recorded the workflow's creation (idempotently: one timeline entry).
    expect(await db.collection(COLLECTIONS.workflowTimeline).countDocuments({ workflowId: late._id })).toBe(1);
    for (const s of streams) {
      const runs = await db.collection(COLLECTIONS.runs).find({ streamId: s.id }).sort({ startedAt: -1 }).limit(1).toArray();
      expect(runs[0]?.events).toBeGreaterThanOrEqual(1); // at least the workflows insert
    }
  });

  it('refuses a partition of another P with a 409 naming the settings', async () => {
    const db = await freshDb();
    const ctx = await testContext(db, mongo.client(), { ...DATABASE, STREAM_PARTITIONS: '3' });
    await expect(resolveStream(ctx, { streamId: 'partition:0/4' })).rejects.toMatchObject({ status: 409, message: expect.stringContaining('STREAM_PARTITIONS=3') });
    await expect(resolveStream(ctx, { streamId: 'partition:3/3' })).rejects.toMatchObject({ status: 400 });
  });

  it('refuses P > 1 on a server older than 7.0, naming the setting and the version; P = 1 runs there', async () => {
    const db = await freshDb();
    primeServerVersion(db, '6.0.14');
    const ctx = await testContext(db, mongo.client(), { ...DATABASE, STREAM_PARTITIONS: '2' });
    await seedWorkflow(db, { organizationId: 'old' });
    const run = await drainStream(ctx, partitionStream(0, 2));
    expect(run.status).toBe('failed');
    expect(run.error?.message).toMatch(/STREAM_PARTITIONS=2 needs MongoDB 7\.0.*6\.0\.14/);
    const one = await drainStream(await testContext(db, mongo.client(), DATABASE), partitionStream(0, 1));
    expect(one.status).toBe('completed');
  });
});

describe('in force at t: reconcile and scans', () => {
  it('a reconcile since an hour ago creates no job for submissions saved before the workflow existed', async () => {
    const db = await freshDb();
    const ctx = await testContext(db, mongo.client(), DATABASE);
    const hourAgo = new Date(Date.now() - 3_600_000);
    const old = await insertSubmissions(db, 5, { orgId: 'recon' });
    await db.collection(submissionsCollection('recon')).updateMany({}, { $set: { submittedAt: new Date(Date.now() - 1_800_000) } });
    // The workflow's _id carries its creation time: now, after the submissions.
    await seedWorkflow(db, { organizationId: 'recon', _id: new ObjectId().toHexString() });
    const fresh = await insertSubmissions(db, 2, { orgId: 'recon' });
    const stream = await resolveStream(ctx, { orgId: 'recon' });
    const res = await reconcileSince(ctx, stream, hourAgo, Deadline.after(systemClock, 20_000));
    expect(res).toMatchObject({ scanned: 7, jobsCreated: 2, complete: true });
    const counts = await jobCounts(db);
    for (const id of old) expect(counts.has(id)).toBe(false);
    // The explicit opt-in applies the workflow to the earlier submissions too.
    const opted = await reconcileSince(ctx, stream, hourAgo, Deadline.after(systemClock, 20_000), 'manual', { includeLaterWorkflows: true });
    expect(opted.jobsCreated).toBe(5);
  });

  it('a manual re-dispatch applies only the workflows in force when the submission was saved', async () => {
    const db = await freshDb();
    const ctx = await testContext(db, mongo.client(), DATABASE);
    await seedWorkflow(db, { organizationId: 'redo', formId: 'old' });
    const [early] = await insertSubmissions(db, 1, { orgId: 'redo', formId: 'later' });
    await db.collection(submissionsCollection('redo')).updateMany({}, { $set: { submittedAt: new Date(Date.now() - 600_000) } });
    await seedWorkflow(db, { organizationId: 'redo', formId: 'later' });
    const [fresh] = await insertSubmissions(db, 1, { orgId: 'redo', formId: 'later' });
    expect((await redispatchSubmission(ctx, 'redo', early!)).jobsCreated).toBe(0);
    expect((await redispatchSubmission(ctx, 'redo', fresh!)).jobsCreated).toBe(1);
  });
});

describe('history lost on a partition', () => {
  it('its recovery scans every submission collection of the partition (progress kept across runs), records the gap once, and leaves the other partitions alone', async () => {
    const db = await freshDb();
    const P = 2;
    const env = { ...DATABASE, STREAM_PARTITIONS: String(P) };
    const ctx = await testContext(db, mongo.client(), env);
    const orgs = Array.from({ length: 6 }, (_, i) => `lost${i}`);
    for (const org of orgs) await seedWorkflow(db, { organizationId: org });
    const lostOrgs = orgs.filter((o) => partitionOf(submissionsCollection(o), P) === 0);
    const otherOrgs = orgs.filter((o) => partitionOf(submissionsCollection(o), P) === 1);
    expect(lostOrgs.length).toBeGreaterThan(0);
    expect(otherOrgs.length).toBeGreaterThan(0);
    const [lostStream, otherStream] = [partitionStream(0, P), partitionStream(1, P)];
    await drainStream(ctx, lostStream);
    await drainStream(ctx, otherStream);
    const lost: string[] = [];
    for (const org of lostOrgs) lost.push(...(await insertSubmissions(db, 300, { orgId: org })));
    const other: string[] = [];
    for (const org of otherOrgs) other.push(...(await insertSubmissions(db, 5, { orgId: org })));
    await failCommand(mongo.client(), { failCommands: ['aggregate'], errorCode: 286, errorLabels: ['NonResumableChangeStreamError'] });
    try {
      const first = await drainStream(ctx, lostStream);
      expect(first.recoveries).toEqual([{ kind: 'history_lost', count: 1 }]);
    } finally {
      await clearFailPoints(mongo.client());
    }
    const store = new CheckpointStore(db);
    // The partition went on from a fresh resume point; the window waits on its recovery document.
    expect((await store.get(lostStream.id))?.recovery).toBeNull();
    expect((await store.get(recoveryId(lostStream)))?.pending).toHaveLength(1);
    expect(await store.get(recoveryId(otherStream))).toBeNull();
    // A clock that runs 150 ms per read makes the first recovery window end during the scan.
    let ticks = 0;
    const slow = await testContext(db, mongo.client(), env, { now: () => Date.now() + 150 * ticks++, sleep: systemClock.sleep });
    const partial = await runRecovery(slow, lostStream as Extract<typeof lostStream, { kind: 'partition' }>, { windowMs: 1500 });
    expect(partial.windowsDone).toBe(0);
    // The first window ended inside the scan: its progress is on the recovery document.
    expect((await store.get(recoveryId(lostStream)))?.recovery).toMatchObject({ kind: 'history_lost', scanned: expect.any(Number) });
    let runs = 1;
    while ((await store.get(recoveryId(lostStream)))?.recovery && runs < 10) {
      expect((await runRecovery(ctx, lostStream as Extract<typeof lostStream, { kind: 'partition' }>)).run.status).toBe('completed');
      runs++;
    }
    expect(runs).toBeGreaterThan(1);
    const cp = await store.get(lostStream.id);
    expect(cp?.recovery).toBeNull();
    expect(cp?.gapCount).toBe(1);
    expect(cp?.gaps[0]).toMatchObject({ reason: 'history_lost', count: lost.length, jobsCreated: lost.length });
    const counts = await jobCounts(db);
    for (const id of lost) expect(counts.get(id)).toBe(1);
    for (const id of other) expect(counts.has(id)).toBe(false); // served by the other partition, which lost nothing
    expect((await drainStream(ctx, otherStream)).recoveries).toEqual([]);
    const after = await jobCounts(db);
    for (const id of [...lost, ...other]) expect(after.get(id)).toBe(1);
  });
});

describe('migration from the collection layout', () => {
  it('switching with traffic flowing: the partitions start at the oldest org token, nothing lost, nothing duplicated', async () => {
    const db = await freshDb();
    const before = await testContext(db, mongo.client(), { STREAM_LAYOUT: 'collection' });
    const orgs = ['mig-a', 'mig-b', 'mig-c'];
    for (const org of orgs) await seedWorkflow(db, { organizationId: org });
    const all: string[] = [];
    for (const org of orgs) await drainStream(before, orgStream(org));
    // Traffic: some drained by the org streams, some written after their last drain.
    all.push(...(await insertSubmissions(db, 5, { orgId: 'mig-a' })));
    await drainStream(before, orgStream('mig-a'));
    all.push(...(await insertSubmissions(db, 4, { orgId: 'mig-b' })));
    all.push(...(await insertSubmissions(db, 3, { orgId: 'mig-a' })));
    const P = 2;
    const after = await testContext(db, mongo.client(), { STREAM_LAYOUT: 'database', STREAM_PARTITIONS: String(P) });
    const streams = await listStreams(after);
    expect(streams.map((s) => s.id)).toEqual(['partition:0/2', 'partition:1/2']);
    all.push(...(await insertSubmissions(db, 2, { orgId: 'mig-c' })));
    for (const s of streams) expect((await drainStream(after, s)).status).toBe('completed');
    all.push(...(await insertSubmissions(db, 2, { orgId: 'mig-b' })));
    for (const s of streams) await drainStream(after, s);
    const counts = await jobCounts(db);
    for (const id of all) expect(counts.get(id)).toBe(1);
    expect(await db.collection(COLLECTIONS.jobs).countDocuments()).toBe(all.length);
    // The overlap with what the org stream had dispatched was absorbed by the job keys.
    const runs = await db.collection(COLLECTIONS.runs).find({ streamId: partitionStream(partitionOf(submissionsCollection('mig-a'), P), P).id }).toArray();
    expect(runs.reduce((n, r) => n + (r.duplicates as number), 0)).toBeGreaterThanOrEqual(5);
  });
});

describe('crash at every database call of a partition drain', () => {
  it('after a crash at any operation (workflow change, job write, timeline, token save …), the next runs give exactly one job per submission', async () => {
    const db = await freshDb();
    const clock = new OffsetClock();
    const ctx = await testContext(db, mongo.client(), DATABASE, clock);
    const stream = partitionStream(0, 1);
    await seedWorkflow(db, { organizationId: 'crash-base' });
    await drainStream(ctx, stream);
    let covered = 0;
    for (let crashAt = 1; crashAt < 100; crashAt++) {
      const orgId = `pcrash${crashAt}`;
      // The workflow's creation is in the backlog too: the registry follows it inside the crashing run.
      await seedWorkflow(db, { organizationId: orgId });
      const ids = await insertSubmissions(db, 60, { orgId });
      const crashing = crashingDb(db, crashAt);
      await drainStream({ ...ctx, db: crashing.db }, stream).catch(() => undefined);
      clock.advance(10 * 60_000); // the dead invocation's lease expires
      for (let i = 0; i < 2; i++) await drainStream(ctx, stream);
      await expectExactlyOne(db, orgId, ids);
      if (!crashing.crashed()) break;
      covered++;
    }
    expect(covered).toBeGreaterThanOrEqual(8);
  });
});
