/**
 * Conformance for the shapes the job queue sends most: key upserts with `$setOnInsert` +
 * `$addToSet`, implicit-equality filters, and `findOneAndUpdate` with an `$or` filter and a sort.
 * Results must be those of mongod (field order is not asserted: mongod orders new fields itself).
 */
import { describe, expect, it } from 'vitest';
import { Long, MongoBulkWriteError, ObjectId } from 'mongodb';
import { useTestDb } from '../../../test/support/mongo.js';

const t = useTestDb('emu_hotpaths');

const job = (key: string, extra: Record<string, unknown> = {}) => ({
  key,
  status: 'queued',
  attempts: 0,
  runAt: new Date(1_000),
  lease: null,
  steps: [{ type: 'webhook', url: 'https://example.com' }],
  submission: { a: { b: [1, 2] } },
  ...extra,
});

const upsert = (doc: Record<string, unknown>, path: string) => ({
  updateOne: { filter: { key: doc.key }, update: { $setOnInsert: doc, $addToSet: { seenBy: path } }, upsert: true },
});

describe('key upserts ($setOnInsert + $addToSet)', () => {
  it('insert new keys, match existing ones, and add a second path exactly once', async () => {
    const c = t.db().collection('up1');
    await c.createIndex({ key: 1 }, { unique: true });
    await c.createIndex({ status: 1, runAt: 1 });
    const first = await c.bulkWrite([upsert(job('a'), 'change_stream'), upsert(job('b'), 'change_stream')], { ordered: false });
    expect(first.upsertedCount).toBe(2);
    const a = await c.findOne({ key: 'a' }, { projection: { _id: 0 } });
    expect(a).toEqual({ ...job('a'), seenBy: ['change_stream'] });

    const again = await c.bulkWrite([upsert(job('a'), 'change_stream'), upsert(job('b', { status: 'other' }), 'change_stream')], { ordered: false });
    expect(again.upsertedCount).toBe(0);
    expect(again.matchedCount).toBe(2);
    expect(again.modifiedCount).toBe(0);
    expect((await c.findOne({ key: 'b' }))?.status).toBe('queued');

    const other = await c.bulkWrite([upsert(job('a'), 'sweep'), upsert(job('c'), 'sweep')], { ordered: false });
    expect(other.modifiedCount).toBe(1);
    expect(other.upsertedCount).toBe(1);
    expect((await c.findOne({ key: 'a' }))?.seenBy).toEqual(['change_stream', 'sweep']);
    expect((await c.findOne({ key: 'c' }))?.seenBy).toEqual(['sweep']);
    expect(await c.countDocuments({ status: 'queued' })).toBe(3);
  });

  it('$setOnInsert and $addToSet on the same field conflict (40) and insert nothing', async () => {
    const c = t.db().collection('up2');
    const err = await c
      .bulkWrite([{ updateOne: { filter: { key: 'x' }, update: { $setOnInsert: { seenBy: ['a'] }, $addToSet: { seenBy: 'b' } }, upsert: true } }], { ordered: false })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoBulkWriteError);
    expect((err as MongoBulkWriteError).writeErrors).toMatchObject([{ code: 40 }]);
    expect(await c.countDocuments()).toBe(0);
  });

  it('a duplicate key set by $setOnInsert fails with 11000 for that statement only', async () => {
    const c = t.db().collection('up3');
    await c.createIndex({ other: 1 }, { unique: true });
    const err = await c
      .bulkWrite([upsert(job('p', { other: 1 }), 'x'), upsert(job('q', { other: 1 }), 'x'), upsert(job('r', { other: 2 }), 'x')], { ordered: false })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoBulkWriteError);
    expect((err as MongoBulkWriteError).writeErrors).toMatchObject([{ index: 1, code: 11000 }]);
    expect((await c.find({}, { sort: { key: 1 } }).toArray()).map((d) => d.key)).toEqual(['p', 'r']);
  });

  it('$addToSet with an array value adds the array as one element; $each adds each', async () => {
    const c = t.db().collection('up4');
    await c.updateOne({ key: 'arr' }, { $setOnInsert: { n: 1 }, $addToSet: { tags: [1, 2] } }, { upsert: true });
    expect((await c.findOne({ key: 'arr' }))?.tags).toEqual([[1, 2]]);
    await c.updateOne({ key: 'each' }, { $addToSet: { tags: { $each: [1, 2, 1] } } }, { upsert: true });
    expect((await c.findOne({ key: 'each' }))?.tags).toEqual([1, 2]);
  });
});

describe('implicit-equality filters', () => {
  it('match array elements, equal numbers of any type, Dates and ObjectIds, and dotted paths', async () => {
    const c = t.db().collection('eq1');
    const oid = new ObjectId();
    await c.insertMany([
      { n: 1, tags: ['a', 'b'], at: new Date(5), ref: oid, sub: [{ x: 1 }, { x: 2 }] },
      { n: 2, tags: [['a']], at: new Date(6), ref: new ObjectId(), sub: { x: [3] } },
      { n: 3, tags: 'a', at: [new Date(5)], sub: [[{ x: 1 }]] },
    ]);
    const ns = async (filter: Record<string, unknown>) => (await c.find(filter, { sort: { n: 1 } }).toArray()).map((d) => d.n);
    expect(await ns({ tags: 'a' })).toEqual([1, 3]);
    expect(await ns({ n: Long.fromNumber(2) })).toEqual([2]);
    expect(await ns({ n: 2.0, tags: 'a' })).toEqual([]);
    expect(await ns({ at: new Date(5) })).toEqual([1, 3]);
    expect(await ns({ ref: oid })).toEqual([1]);
    expect(await ns({ 'sub.x': 1 })).toEqual([1]);
    expect(await ns({ 'sub.x': 3 })).toEqual([2]);
    expect(await ns({ tags: true })).toEqual([]);
  });
});

describe('findOneAndUpdate with $or and a sort (the claim shape)', () => {
  it('claims due jobs earliest runAt first, including expired leases, then nothing', async () => {
    const c = t.db().collection('claim1');
    await c.createIndex({ status: 1, runAt: 1 });
    const now = new Date(10_000);
    await c.insertMany([
      { name: 'late', status: 'queued', runAt: new Date(9_000), attempts: 0 },
      { name: 'future', status: 'queued', runAt: new Date(20_000), attempts: 0 },
      { name: 'expired', status: 'running', runAt: new Date(8_000), attempts: 1, lease: { expiresAt: new Date(9_999) } },
      { name: 'leased', status: 'running', runAt: new Date(1_000), attempts: 1, lease: { expiresAt: new Date(11_000) } },
      { name: 'exhausted', status: 'running', runAt: new Date(2_000), attempts: 5, lease: { expiresAt: new Date(1) } },
      { name: 'early', status: 'queued', runAt: new Date(3_000), attempts: 0 },
      { name: 'done', status: 'done', runAt: new Date(0), attempts: 1 },
    ]);
    const due = {
      $or: [
        { status: 'queued', runAt: { $lte: now } },
        { status: 'running', 'lease.expiresAt': { $lt: now }, attempts: { $lt: 5 } },
      ],
    };
    const claimed: string[] = [];
    for (;;) {
      const before = await c.findOneAndUpdate(due, { $set: { status: 'running', lease: { expiresAt: new Date(60_000) } }, $inc: { attempts: 1 } }, { sort: { runAt: 1 } });
      if (!before) break;
      claimed.push(before.name as string);
    }
    expect(claimed).toEqual(['early', 'expired', 'late']);
    expect((await c.findOne({ name: 'expired' }))?.attempts).toBe(2);
  });

  it('sorts descending, by a second key, and puts a missing field first when ascending', async () => {
    const c = t.db().collection('claim2');
    await c.insertMany([
      { name: 'a', p: 1, q: 2 },
      { name: 'b', p: 2, q: 1 },
      { name: 'c', p: 2, q: 3 },
      { name: 'd', q: 9 },
    ]);
    const pick = async (sort: Record<string, 1 | -1>) => (await c.findOneAndUpdate({}, { $set: { seen: true } }, { sort }))?.name;
    expect(await pick({ p: -1, q: 1 })).toBe('b');
    expect(await pick({ p: -1, q: -1 })).toBe('c');
    expect(await pick({ p: 1 })).toBe('d');
    expect((await c.find({}, { sort: { p: 1, q: -1 } }).toArray()).map((d) => d.name)).toEqual(['d', 'a', 'c', 'b']);
  });

  it('an array sort field sorts by its smallest element ascending and its largest descending', async () => {
    const c = t.db().collection('claim3');
    await c.insertMany([
      { name: 'x', v: [5, 1] },
      { name: 'y', v: 3 },
      { name: 'z', v: [2, 9] },
    ]);
    expect((await c.findOneAndDelete({}, { sort: { v: 1 } }))?.name).toBe('x');
    expect((await c.findOneAndDelete({}, { sort: { v: -1 } }))?.name).toBe('z');
    expect((await c.find({}, { sort: { v: 1 } }).toArray()).map((d) => d.name)).toEqual(['y']);
  });
});
