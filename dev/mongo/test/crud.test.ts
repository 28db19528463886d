/**
 * Conformance: write commands through the real driver (insert, update, delete, findAndModify,
 * bulkWrite), including upserts and duplicate-key errors as mongod reports them.
 */
import { describe, expect, it } from 'vitest';
import { Long, MongoBulkWriteError, MongoServerError, ObjectId } from 'mongodb';
import { useTestDb } from '../../../test/support/mongo.js';

const t = useTestDb('emu_crud');

describe('insert', () => {
  it('insertOne returns the id and stores the document with _id first', async () => {
    const c = t.db().collection('ins1');
    const res = await c.insertOne({ a: 1, nested: { b: [1, 2] } });
    expect(res.acknowledged).toBe(true);
    const doc = await c.findOne({ _id: res.insertedId });
    expect(doc).toEqual({ _id: res.insertedId, a: 1, nested: { b: [1, 2] } });
    expect(Object.keys(doc!)[0]).toBe('_id');
  });

  it('a multi-megabyte document arrives in many TCP chunks and round-trips intact', async () => {
    const c = t.db().collection('ins_big');
    const big = 'x'.repeat(6 * 1024 * 1024);
    const { insertedId } = await c.insertOne({ big });
    const back = await c.findOne({ _id: insertedId });
    expect(back?.big.length).toBe(big.length);
  });

  it('insertMany inserts every document and counts them', async () => {
    const c = t.db().collection('ins2');
    const res = await c.insertMany(Array.from({ length: 250 }, (_, i) => ({ i })));
    expect(res.insertedCount).toBe(250);
    expect(await c.countDocuments()).toBe(250);
  });

  it('a duplicate _id fails with 11000, keyPattern and keyValue', async () => {
    const c = t.db().collection('ins3');
    await c.insertOne({ _id: 'x' as unknown as ObjectId });
    const err = await c.insertOne({ _id: 'x' as unknown as ObjectId }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoServerError);
    expect((err as MongoServerError).code).toBe(11000);
    expect((err as MongoServerError).keyPattern).toEqual({ _id: 1 });
    expect((err as MongoServerError).keyValue).toEqual({ _id: 'x' });
    expect((err as MongoServerError).message).toMatch(/E11000 duplicate key error collection: .*ins3 index: _id_ dup key/);
  });

  it('ordered insertMany stops at the first error; unordered continues', async () => {
    const c = t.db().collection('ins4');
    const ordered = await c.insertMany([{ _id: 1 }, { _id: 1 }, { _id: 2 }] as never[]).catch((e: unknown) => e);
    expect(ordered).toBeInstanceOf(MongoBulkWriteError);
    expect((ordered as MongoBulkWriteError).insertedCount).toBe(1);
    expect(await c.countDocuments()).toBe(1);
    const unordered = await c.insertMany([{ _id: 1 }, { _id: 3 }, { _id: 4 }] as never[], { ordered: false }).catch((e: unknown) => e);
    expect(unordered).toBeInstanceOf(MongoBulkWriteError);
    expect((unordered as MongoBulkWriteError).writeErrors).toHaveLength(1);
    expect(await c.countDocuments()).toBe(3);
  });
});

describe('update', () => {
  it('updateOne applies operators and reports matched/modified', async () => {
    const c = t.db().collection<{ k: number; n: number; tags?: string[]; sub?: { x: boolean } }>('upd1');
    await c.insertMany([{ k: 1, n: 1, tags: ['a'] }, { k: 1, n: 5 }]);
    const r = await c.updateOne({ k: 1, n: 1 }, { $inc: { n: 2 }, $push: { tags: 'b' }, $set: { 'sub.x': true } });
    expect(r).toMatchObject({ matchedCount: 1, modifiedCount: 1, upsertedCount: 0 });
    expect(await c.findOne({ n: 3 }, { projection: { _id: 0 } })).toEqual({ k: 1, n: 3, tags: ['a', 'b'], sub: { x: true } });
  });

  it('an update that changes nothing matches but does not modify', async () => {
    const c = t.db().collection('upd2');
    await c.insertOne({ a: 1 });
    expect(await c.updateOne({ a: 1 }, { $set: { a: 1 } })).toMatchObject({ matchedCount: 1, modifiedCount: 0 });
  });

  it('updateMany updates every match; $unset removes', async () => {
    const c = t.db().collection('upd3');
    await c.insertMany([{ g: 1, x: 1 }, { g: 1, x: 2 }, { g: 2, x: 3 }]);
    expect(await c.updateMany({ g: 1 }, { $unset: { x: '' } })).toMatchObject({ matchedCount: 2, modifiedCount: 2 });
    expect(await c.countDocuments({ x: { $exists: true } })).toBe(1);
  });

  it('upsert inserts from the query equality fields plus $setOnInsert', async () => {
    const c = t.db().collection('upd4');
    const r = await c.updateOne({ key: 'k1', n: { $gt: 5 } }, { $set: { s: 1 }, $setOnInsert: { created: true } }, { upsert: true });
    expect(r.upsertedCount).toBe(1);
    expect(r.upsertedId).toBeInstanceOf(ObjectId);
    expect(await c.findOne({ key: 'k1' }, { projection: { _id: 0 } })).toEqual({ key: 'k1', s: 1, created: true });
    const again = await c.updateOne({ key: 'k1' }, { $set: { s: 2 }, $setOnInsert: { created: false } }, { upsert: true });
    expect(again).toMatchObject({ matchedCount: 1, modifiedCount: 1, upsertedCount: 0 });
    expect(await c.findOne({ key: 'k1' }, { projection: { _id: 0 } })).toEqual({ key: 'k1', s: 2, created: true });
  });

  it('replaceOne keeps _id and replaces the rest', async () => {
    const c = t.db().collection('upd5');
    const { insertedId } = await c.insertOne({ a: 1, b: 2 });
    await c.replaceOne({ _id: insertedId }, { c: 3 });
    expect(await c.findOne({ _id: insertedId })).toEqual({ _id: insertedId, c: 3 });
  });

  it('arrayFilters and the positional operator', async () => {
    const c = t.db().collection('upd6');
    await c.insertOne({ _id: 1, items: [{ q: 1 }, { q: 5 }, { q: 7 }] } as never);
    await c.updateOne({ _id: 1 } as never, { $set: { 'items.$[big].flag': true } }, { arrayFilters: [{ 'big.q': { $gte: 5 } }] });
    await c.updateOne({ _id: 1, 'items.q': 1 } as never, { $inc: { 'items.$.q': 10 } });
    const doc = await c.findOne({ _id: 1 } as never);
    expect(doc!.items).toEqual([{ q: 11 }, { q: 5, flag: true }, { q: 7, flag: true }]);
  });

  it('pipeline-style updates compute fields from the document', async () => {
    const c = t.db().collection('upd9');
    await c.insertOne({ _id: 1, a: 2, b: 3 } as never);
    await c.updateOne({ _id: 1 } as never, [{ $set: { sum: { $add: ['$a', '$b'] } } }, { $unset: 'b' }]);
    expect(await c.findOne({ _id: 1 } as never)).toEqual({ _id: 1, a: 2, sum: 5 });
  });

  it('an unknown update operator fails with FailedToParse (9)', async () => {
    const c = t.db().collection('upd7');
    await c.insertOne({ a: 1 });
    const err = await c.updateOne({ a: 1 }, { $bogus: { a: 1 } } as never).catch((e: unknown) => e);
    expect((err as MongoServerError).code).toBe(9);
  });

  it('$inc on a non-number fails with TypeMismatch (14); conflicting paths with 40', async () => {
    const c = t.db().collection('upd10');
    await c.insertOne({ _id: 1, s: 'text', n: 1 } as never);
    const inc = await c.updateOne({ _id: 1 } as never, { $inc: { s: 1 } }).catch((e: unknown) => e);
    expect((inc as MongoServerError).code).toBe(14);
    const conflict = await c.updateOne({ _id: 1 } as never, { $set: { n: 5 }, $inc: { n: 1 } }).catch((e: unknown) => e);
    expect((conflict as MongoServerError).code).toBe(40);
    expect(await c.findOne({ _id: 1 } as never)).toEqual({ _id: 1, s: 'text', n: 1 });
  });

  it('changing _id fails with ImmutableField (66)', async () => {
    const c = t.db().collection('upd8');
    await c.insertOne({ _id: 1, a: 1 } as never);
    const err = await c.updateOne({ _id: 1 } as never, { $set: { _id: 2 } }).catch((e: unknown) => e);
    expect((err as MongoServerError).code).toBe(66);
  });
});

describe('delete', () => {
  it('deleteOne removes one, deleteMany removes all matches', async () => {
    const c = t.db().collection('del1');
    await c.insertMany([{ g: 1 }, { g: 1 }, { g: 1 }, { g: 2 }]);
    expect((await c.deleteOne({ g: 1 })).deletedCount).toBe(1);
    expect((await c.deleteMany({ g: 1 })).deletedCount).toBe(2);
    expect((await c.deleteMany({ g: 99 })).deletedCount).toBe(0);
    expect(await c.countDocuments()).toBe(1);
  });
});

describe('findAndModify', () => {
  it('findOneAndUpdate returns the pre-image by default and the post-image with returnDocument after', async () => {
    const c = t.db().collection('fam1');
    await c.insertOne({ k: 'a', v: 1 });
    const before = await c.findOneAndUpdate({ k: 'a' }, { $inc: { v: 1 } });
    expect(before).toMatchObject({ k: 'a', v: 1 });
    const after = await c.findOneAndUpdate({ k: 'a' }, { $inc: { v: 1 } }, { returnDocument: 'after' });
    expect(after).toMatchObject({ k: 'a', v: 3 });
  });

  it('findOneAndUpdate upserts; with returnDocument before it returns null', async () => {
    const c = t.db().collection('fam2');
    expect(await c.findOneAndUpdate({ k: 'new' }, { $set: { v: 1 } }, { upsert: true })).toBeNull();
    const doc = await c.findOneAndUpdate({ k: 'new2' }, { $set: { v: 2 } }, { upsert: true, returnDocument: 'after' });
    expect(doc).toMatchObject({ k: 'new2', v: 2 });
    const meta = await c.findOneAndUpdate({ k: 'new3' }, { $set: { v: 3 } }, { upsert: true, includeResultMetadata: true });
    expect(meta.lastErrorObject).toMatchObject({ n: 1, updatedExisting: false });
    expect(meta.lastErrorObject?.upserted).toBeDefined();
  });

  it('findOneAndUpdate honours sort and projection', async () => {
    const c = t.db().collection('fam3');
    await c.insertMany([{ g: 1, p: 3 }, { g: 1, p: 9 }, { g: 1, p: 5 }]);
    const doc = await c.findOneAndUpdate({ g: 1 }, { $set: { picked: true } }, { sort: { p: -1 }, projection: { _id: 0, p: 1 } });
    expect(doc).toEqual({ p: 9 });
  });

  it('findOneAndDelete and findOneAndReplace', async () => {
    const c = t.db().collection('fam4');
    await c.insertMany([{ k: 1 }, { k: 2 }]);
    expect(await c.findOneAndDelete({ k: 1 })).toMatchObject({ k: 1 });
    expect(await c.findOneAndDelete({ k: 1 })).toBeNull();
    expect(await c.findOneAndReplace({ k: 2 }, { k: 3 }, { returnDocument: 'after' })).toMatchObject({ k: 3 });
  });

  it('a duplicate key from findOneAndUpdate is a top-level 11000', async () => {
    const c = t.db().collection('fam5');
    await c.createIndex({ u: 1 }, { unique: true });
    await c.insertMany([{ u: 1 }, { u: 2 }]);
    const err = await c.findOneAndUpdate({ u: 2 }, { $set: { u: 1 } }).catch((e: unknown) => e);
    expect((err as MongoServerError).code).toBe(11000);
    expect((err as MongoServerError).keyValue).toEqual({ u: 1 });
  });
});

describe('bulkWrite', () => {
  it('unordered bulk upserts report per-op duplicate keys with the caller index', async () => {
    const c = t.db().collection('bulk1');
    await c.createIndex({ key: 1 }, { unique: true });
    await c.insertOne({ key: 'taken', owner: 'x' });
    const ops = [
      { updateOne: { filter: { key: 'a' }, update: { $setOnInsert: { key: 'a', v: 1 } }, upsert: true } },
      { insertOne: { document: { key: 'taken' } } },
      { updateOne: { filter: { key: 'b' }, update: { $setOnInsert: { key: 'b', v: 2 } }, upsert: true } },
      { updateOne: { filter: { owner: 'nobody' }, update: { $set: { key: 'taken' } }, upsert: true } },
      { updateOne: { filter: { key: 'a' }, update: { $setOnInsert: { v: 99 } }, upsert: true } },
    ];
    const err = await c.bulkWrite(ops, { ordered: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoBulkWriteError);
    const bulk = err as MongoBulkWriteError;
    const writeErrors = [bulk.writeErrors].flat();
    expect(writeErrors.map((w) => w.index).sort()).toEqual([1, 3]);
    for (const w of writeErrors) {
      expect(w.code).toBe(11000);
      expect(w.errmsg).toMatch(/dup key: \{ key: "taken" \}/);
    }
    expect(bulk.result.upsertedCount).toBe(2);
    expect(bulk.result.matchedCount).toBe(1);
    expect(await c.countDocuments()).toBe(3);
    expect(await c.findOne({ key: 'a' }, { projection: { _id: 0 } })).toEqual({ key: 'a', v: 1 });
  });
});

describe('retryable writes', () => {
  it('the same (lsid, txnNumber) sent twice is applied once and answered with the first result', async () => {
    const session = t.client().startSession();
    try {
      const cmd = { insert: 'retry1', documents: [{ k: 'r' }], txnNumber: Long.fromNumber(7) };
      const first = await t.db().command(cmd, { session });
      const again = await t.db().command(cmd, { session });
      expect(first.n).toBe(1);
      expect(again.n).toBe(1);
      expect(await t.db().collection('retry1').countDocuments({ k: 'r' })).toBe(1);
    } finally {
      await session.endSession();
    }
  });
});

describe('client bulkWrite (8.0 bulkWrite command)', () => {
  it('writes across collections and reports per-op results', async (ctx) => {
    const hello = await t.client().db('admin').command({ hello: 1 });
    // The command exists from wire version 25 (8.0); older real servers answer CommandNotFound.
    if (hello.maxWireVersion < 25) ctx.skip();
    const ns = (c: string) => `${t.db().databaseName}.${c}` as const;
    type Row = { _id?: number; v: number; k?: string };
    const res = await t.client().bulkWrite<Record<string, Row>>(
      [
        { name: 'insertOne', namespace: ns('cb1'), document: { _id: 1, v: 1 } },
        { name: 'updateOne', namespace: ns('cb1'), filter: { _id: 1 }, update: { $set: { v: 2 } } },
        { name: 'updateOne', namespace: ns('cb2'), filter: { k: 'x' }, update: { $set: { v: 3 } }, upsert: true },
        { name: 'deleteMany', namespace: ns('cb1'), filter: { v: 2 } },
      ],
      { verboseResults: true },
    );
    expect(res).toMatchObject({ insertedCount: 1, matchedCount: 1, modifiedCount: 1, upsertedCount: 1, deletedCount: 1 });
    expect(res.updateResults?.get(2)?.upsertedId).toBeDefined();
    expect(await t.db().collection('cb2').countDocuments({ k: 'x', v: 3 })).toBe(1);
  });
});
