/**
 * Issue 14 case 1: change events over 16 MiB. With `$changeStreamSplitLargeEvent` (MongoDB 7.0+,
 * 6.0.9+; the emulator reports 8.0) the drain reads the fragments and reassembles them; without it
 * (DRAIN_SPLIT_LARGE_EVENTS=off stands for an older server) mongod fails the read with
 * BSONObjectTooLarge (10334) naming the event, and the drain steps over it with a dead letter.
 */
import { describe, expect, it } from 'vitest';
import { ObjectId, type ChangeStreamDocument, type Document } from 'mongodb';
import { testDbName, useTestDb } from '../support/mongo.js';
import { seedWorkflow, testContext } from '../support/context.js';
import { drainStream } from '../../lib/drain/drain.js';
import { orgStream, partitionStream } from '../../lib/streams/refs.js';
import { CheckpointStore } from '../../lib/streams/checkpoint.js';
import { COLLECTIONS, ensureIndexes, submissionsCollection } from '../../lib/data/mongo.js';
import { FragmentAssembler, splitSupportedIn } from '../../lib/drain/split.js';
import type { DeadLetterDoc, JobDoc, ResumeToken } from '../../lib/data/documents.js';

const mongo = useTestDb('drain_large_events');
const MB = 1024 * 1024;

/** The scenario: a 9.5 MB insert, an 8.5 MB `$set` into data.blob, an ordinary insert. */
async function scenario(orgId: string): Promise<{ large: ObjectId; ordinary: ObjectId }> {
  const coll = mongo.db().collection(submissionsCollection(orgId));
  const large = new ObjectId();
  await coll.insertOne({ _id: large, organizationId: orgId, formId: 'contact', data: { blob: 'a'.repeat(9.5 * MB) }, submittedAt: new Date() });
  await coll.updateOne({ _id: large }, { $set: { 'data.blob': 'b'.repeat(8.5 * MB) } });
  const ordinary = new ObjectId();
  await coll.insertOne({ _id: ordinary, organizationId: orgId, formId: 'contact', data: { name: 'ordinary' }, submittedAt: new Date() });
  return { large, ordinary };
}

async function jobsOf(submissionId: ObjectId): Promise<JobDoc[]> {
  return mongo.db().collection<JobDoc>(COLLECTIONS.jobs).find({ submissionId: submissionId.toHexString() }, { projection: { submission: 0, steps: 0 } }).toArray();
}

describe('case 1: change events over 16 MiB', () => {
  it('with $changeStreamSplitLargeEvent: the 17 MB update event is reassembled and dispatched, the ordinary submission gets its job, the stream is not failing', async () => {
    const orgId = 'large_split';
    const ctx = await testContext(mongo.db(), mongo.client());
    await seedWorkflow(mongo.db(), { organizationId: orgId, trigger: { on: ['insert', 'update'] } });
    await drainStream(ctx, orgStream(orgId));
    const { large, ordinary } = await scenario(orgId);
    const runs = [];
    for (let i = 0; i < 4; i++) runs.push(await drainStream(ctx, orgStream(orgId)));
    expect(runs.map((r) => r.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
    expect(await jobsOf(ordinary)).toHaveLength(1);
    const largeJobs = await jobsOf(large);
    expect(largeJobs.map((j) => j.event).sort()).toEqual(['insert', 'update']);
    // The update's job carries the document as the reassembled event gave it.
    const update = await mongo.db().collection<JobDoc>(COLLECTIONS.jobs).findOne({ submissionId: large.toHexString(), event: 'update' });
    expect(((update?.submission as { data: { blob: string } }).data.blob)).toMatch(/^b{100}/);
    expect((update?.submission as { data: { blob: string } }).data.blob.length).toBe(8.5 * MB);
    const cp = await new CheckpointStore(mongo.db()).get(`org:${orgId}`);
    expect(cp?.state).not.toBe('failing');
    expect(await mongo.db().collection(COLLECTIONS.deadLetters).countDocuments({ streamId: `org:${orgId}` })).toBe(0);
  });

  it('without the split stage: the read fails with 10334, the event is dead-lettered with its position and reason, the stream goes on', async () => {
    const orgId = 'large_nosplit';
    const ctx = await testContext(mongo.db(), mongo.client(), { DRAIN_SPLIT_LARGE_EVENTS: 'off' });
    await seedWorkflow(mongo.db(), { organizationId: orgId, trigger: { on: ['insert', 'update'] } });
    await drainStream(ctx, orgStream(orgId));
    const { large, ordinary } = await scenario(orgId);
    const runs = [];
    for (let i = 0; i < 4; i++) runs.push(await drainStream(ctx, orgStream(orgId)));
    expect(runs.map((r) => r.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
    expect(runs[0]!.recoveries).toContainEqual({ kind: 'oversized_event', count: 1 });
    expect(await jobsOf(ordinary)).toHaveLength(1);
    expect((await jobsOf(large)).map((j) => j.event)).toEqual(['insert']);
    const dead = await mongo.db().collection<DeadLetterDoc>(COLLECTIONS.deadLetters).find({ streamId: `org:${orgId}` }).toArray();
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ code: 'oversized', operationType: 'update', documentKey: { _id: large } });
    expect(dead[0]!.reason).toMatch(/resume token [0-9A-F]+ \(cluster time \d+\.\d+\).*10334/);
    expect(dead[0]!.clusterTime).not.toBeNull();
    const cp = await new CheckpointStore(mongo.db()).get(`org:${orgId}`);
    expect(cp?.state).not.toBe('failing');
    expect(cp?.consecutiveFailures).toBe(0);
  });
});

describe('split events are reassembled, and the token saved is never one from inside an event', () => {
  const token = (s: string): ResumeToken => ({ _data: s });
  const fragment = (n: number, of: number, fields: Document): ChangeStreamDocument<Document> =>
    ({ _id: token(`f${n}`), splitEvent: { fragment: n, of }, ...fields }) as never;

  it('joins the fields of all fragments under the last fragment token', () => {
    const a = new FragmentAssembler();
    expect(a.push(fragment(1, 2, { operationType: 'update', fullDocument: { x: 1 } }), token('before'))).toBeNull();
    expect(a.pending).toBe(true);
    expect(a.safeToken(token('f1'))).toEqual(token('before'));
    const whole = a.push(fragment(2, 2, { updateDescription: { updatedFields: { x: 1 } } }), token('f1'));
    expect(whole).toEqual({ _id: token('f2'), operationType: 'update', fullDocument: { x: 1 }, updateDescription: { updatedFields: { x: 1 } } });
    expect(a.pending).toBe(false);
    expect(a.safeToken(token('f2'))).toEqual(token('f2'));
  });

  it('an unsplit event passes through; fragments out of order are refused', () => {
    const a = new FragmentAssembler();
    const plain = { _id: token('p'), operationType: 'insert' } as never;
    expect(a.push(plain, null)).toBe(plain);
    expect(() => a.push(fragment(2, 2, {}), null)).toThrow(/out of order/);
  });

  it.each([
    ['7.0.0', true],
    ['8.0.4', true],
    ['6.0.9', true],
    ['6.0.8', false],
    ['6.1.0', true],
    ['5.0.20', false],
    ['', false],
  ] as const)('server %s supports $changeStreamSplitLargeEvent: %s', (version, expected) => {
    expect(splitSupportedIn(version)).toBe(expected);
  });
});

describe('case 1 on a database-level partition stream', () => {
  it.each([
    ['auto', 'reassembled'],
    ['off', 'stepped over'],
  ] as const)('DRAIN_SPLIT_LARGE_EVENTS=%s: the large update is %s, the ordinary submission gets its job, no run fails', async (setting, _outcome) => {
    const db = mongo.client().db(testDbName('largepart'));
    try {
      await ensureIndexes(db);
      const orgId = `lp_${setting}`;
      const ctx = await testContext(db, mongo.client(), { STREAM_LAYOUT: 'database', DRAIN_SPLIT_LARGE_EVENTS: setting });
      await seedWorkflow(db, { organizationId: orgId, trigger: { on: ['insert', 'update'] } });
      const stream = partitionStream(0, 1);
      await drainStream(ctx, stream);
      const coll = db.collection(submissionsCollection(orgId));
      const large = new ObjectId();
      await coll.insertOne({ _id: large, organizationId: orgId, formId: 'contact', data: { blob: 'a'.repeat(9.5 * MB) }, submittedAt: new Date() });
      await coll.updateOne({ _id: large }, { $set: { 'data.blob': 'b'.repeat(8.5 * MB) } });
      const ordinary = new ObjectId();
      await coll.insertOne({ _id: ordinary, organizationId: orgId, formId: 'contact', data: {}, submittedAt: new Date() });
      const runs = [];
      for (let i = 0; i < 4; i++) runs.push(await drainStream(ctx, stream));
      expect(runs.map((r) => r.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
      expect(await db.collection(COLLECTIONS.jobs).countDocuments({ submissionId: ordinary.toHexString() })).toBe(1);
      const updates = await db.collection(COLLECTIONS.jobs).countDocuments({ submissionId: large.toHexString(), event: 'update' });
      const dead = await db.collection(COLLECTIONS.deadLetters).countDocuments({ code: 'oversized' });
      expect([updates, dead]).toEqual(setting === 'auto' ? [1, 0] : [0, 1]);
    } finally {
      await db.dropDatabase().catch(() => undefined);
    }
  });
});
