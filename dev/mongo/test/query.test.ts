/**
 * Conformance: reads through the real driver — find (filter, sort, skip, limit, projection,
 * batchSize + getMore + killCursors), count, distinct, aggregate — and BSON types that must compare
 * and round-trip like mongod's.
 */
import { describe, expect, it } from 'vitest';
import { Binary, Decimal128, Long, MongoServerError, ObjectId, Timestamp, UUID } from 'mongodb';
import { useTestDb } from '../../../test/support/mongo.js';

const t = useTestDb('emu_query');

describe('find', () => {
  it('filters, sorts, skips, limits and projects', async () => {
    const c = t.db().collection('f1');
    await c.insertMany(Array.from({ length: 20 }, (_, i) => ({ i, even: i % 2 === 0, name: `n${i}`, extra: { x: i } })));
    const docs = await c
      .find({ even: true, i: { $gte: 4 } }, { projection: { _id: 0, i: 1, 'extra.x': 1 } })
      .sort({ i: -1 })
      .skip(1)
      .limit(3)
      .toArray();
    expect(docs).toEqual([
      { i: 16, extra: { x: 16 } },
      { i: 14, extra: { x: 14 } },
      { i: 12, extra: { x: 12 } },
    ]);
    const excluded = await c.findOne({ i: 3 }, { projection: { extra: 0, _id: 0 } });
    expect(excluded).toEqual({ i: 3, even: false, name: 'n3' });
  });

  it('pages through a large result with getMore, and killCursors closes a cursor early', async () => {
    const c = t.db().collection('f2');
    await c.insertMany(Array.from({ length: 350 }, (_, i) => ({ i })));
    const all = await c.find({}, { batchSize: 50 }).sort({ i: 1 }).toArray();
    expect(all.map((d) => d.i)).toEqual(Array.from({ length: 350 }, (_, i) => i));
    const cursor = c.find({}, { batchSize: 10 });
    expect((await cursor.next())!.i).toBe(0);
    const id = cursor.id!;
    expect(id.isZero()).toBe(false);
    await cursor.close();
    const err = await t.db().command({ getMore: id, collection: 'f2' }).catch((e: unknown) => e);
    expect((err as MongoServerError).code).toBe(43);
  });

  it('getMore on an unknown cursor fails with CursorNotFound (43)', async () => {
    const err = await t.db().command({ getMore: Long.fromNumber(123456789), collection: 'f2' }).catch((e: unknown) => e);
    expect((err as MongoServerError).code).toBe(43);
  });

  it('an unknown query operator fails with BadValue (2)', async () => {
    const c = t.db().collection('f3');
    await c.insertOne({ a: 1 });
    const err = await c.find({ a: { $nope: 1 } } as never).toArray().catch((e: unknown) => e);
    expect((err as MongoServerError).code).toBe(2);
  });

  it('sorts mixed types in BSON order', async () => {
    const c = t.db().collection('f4');
    const oid = new ObjectId();
    const date = new Date(0);
    await c.insertMany([
      { k: 1, v: true },
      { k: 2, v: 'str' },
      { k: 3, v: 10 },
      { k: 4, v: null },
      { k: 5, v: oid },
      { k: 6, v: date },
      { k: 7, v: { a: 1 } },
      { k: 8, v: 2.5 },
    ]);
    const order = (await c.find({}).sort({ v: 1 }).toArray()).map((d) => d.k);
    // null < numbers < string < object < ObjectId < bool < date
    expect(order).toEqual([4, 8, 3, 2, 7, 5, 1, 6]);
  });
});

describe('BSON types', () => {
  it('round-trips and matches ObjectId, Date, Long, Decimal128, Timestamp, Binary and UUID', async () => {
    const c = t.db().collection('b1');
    const oid = new ObjectId();
    const uuid = new UUID();
    const doc = {
      _id: oid,
      when: new Date(1_700_000_000_000),
      big: Long.fromString('9007199254740993'),
      dec: Decimal128.fromString('12.50'),
      ts: new Timestamp({ t: 100, i: 2 }),
      bin: new Binary(Buffer.from([0xff, 0x00, 0x10])),
      uuid,
    };
    await c.insertOne(doc);
    const back = await c.findOne({ _id: new ObjectId(oid.toHexString()) }, { promoteLongs: false });
    expect(back!._id.equals(oid)).toBe(true);
    expect(back!.when).toEqual(doc.when);
    expect(Long.isLong(back!.big) && back!.big.toString()).toBe('9007199254740993');
    expect(back!.dec.toString()).toBe('12.50');
    expect(back!.ts.equals(doc.ts)).toBe(true);
    expect(Buffer.from(back!.bin.buffer).equals(Buffer.from([0xff, 0x00, 0x10]))).toBe(true);
    expect(await c.countDocuments({ uuid: new UUID(uuid.toHexString()) })).toBe(1);
    expect(await c.countDocuments({ bin: new Binary(Buffer.from([0xff, 0x00, 0x10])) })).toBe(1);
    expect(await c.countDocuments({ bin: new Binary(Buffer.from([0xff, 0x00, 0x11])) })).toBe(0);
    expect(await c.countDocuments({ when: { $gt: new Date(1_600_000_000_000) } })).toBe(1);
    expect(await c.countDocuments({ ts: { $gt: new Timestamp({ t: 99, i: 5 }) } })).toBe(1);
    expect(await c.countDocuments({ ts: { $gt: new Timestamp({ t: 100, i: 2 }) } })).toBe(0);
  });

  it('numbers compare across int, long and double', async () => {
    const c = t.db().collection('b2');
    await c.insertMany([{ n: 5 }, { n: Long.fromNumber(7) }, { n: 6.5 }]);
    expect(await c.countDocuments({ n: { $gt: 6 } })).toBe(2);
    expect(await c.countDocuments({ n: Long.fromNumber(5) })).toBe(1);
    expect((await c.find({}).sort({ n: -1 }).toArray()).map((d) => Number(d.n))).toEqual([7, 6.5, 5]);
  });

  it('orders timestamps by (t, i), not by their decimal string', async () => {
    const c = t.db().collection('b3');
    await c.insertMany([{ ts: new Timestamp({ t: 10, i: 1 }) }, { ts: new Timestamp({ t: 9, i: 1 }) }, { ts: new Timestamp({ t: 100, i: 1 }) }]);
    const sorted = (await c.find({}).sort({ ts: 1 }).toArray()).map((d) => (d.ts as Timestamp).t);
    expect(sorted).toEqual([9, 10, 100]);
  });
});

describe('count, distinct, aggregate', () => {
  it('countDocuments with skip/limit, estimatedDocumentCount and distinct', async () => {
    const c = t.db().collection('a1');
    await c.insertMany([{ g: 'a', tags: ['x', 'y'] }, { g: 'b', tags: ['y'] }, { g: 'a' }, { g: 'c', tags: 'z' }]);
    expect(await c.countDocuments({ g: 'a' })).toBe(2);
    expect(await c.countDocuments({}, { skip: 1, limit: 2 })).toBe(2);
    expect(await c.estimatedDocumentCount()).toBe(4);
    expect((await c.distinct('g')).sort()).toEqual(['a', 'b', 'c']);
    expect((await c.distinct('tags')).sort()).toEqual(['x', 'y', 'z']);
    expect(await c.distinct('g', { tags: 'y' })).toHaveLength(2);
  });

  it('runs common stages: $match, $group, $sort, $project, $limit, $unwind, $lookup, $count', async () => {
    const c = t.db().collection('a2');
    const other = t.db().collection('a2_names');
    await other.insertMany([{ _id: 'a', label: 'Alpha' }, { _id: 'b', label: 'Beta' }] as never[]);
    await c.insertMany([{ g: 'a', n: 1, tags: [1, 2] }, { g: 'a', n: 2, tags: [3] }, { g: 'b', n: 10, tags: [] }]);
    const grouped = await c
      .aggregate([
        { $match: { n: { $gte: 1 } } },
        { $group: { _id: '$g', total: { $sum: '$n' }, count: { $sum: 1 } } },
        { $sort: { total: -1 } },
        { $lookup: { from: 'a2_names', localField: '_id', foreignField: '_id', as: 'name' } },
        { $project: { _id: 1, total: 1, count: 1, label: { $first: '$name.label' } } },
      ])
      .toArray();
    expect(grouped).toEqual([
      { _id: 'b', total: 10, count: 1, label: 'Beta' },
      { _id: 'a', total: 3, count: 2, label: 'Alpha' },
    ]);
    const unwound = await c.aggregate([{ $unwind: '$tags' }, { $count: 'n' }]).toArray();
    expect(unwound).toEqual([{ n: 3 }]);
    const limited = await c.aggregate([{ $sort: { n: 1 } }, { $limit: 1 }, { $project: { _id: 0, n: 1 } }]).toArray();
    expect(limited).toEqual([{ n: 1 }]);
  });

  it('an unknown pipeline stage fails with 40324', async () => {
    const c = t.db().collection('a3');
    const err = await c.aggregate([{ $nonsense: {} }]).toArray().catch((e: unknown) => e);
    expect((err as MongoServerError).code).toBe(40324);
  });
});
