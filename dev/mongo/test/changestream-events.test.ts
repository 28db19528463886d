/**
 * Conformance: change-stream event kinds and scopes — update (updateDescription), replace, delete,
 * drop, rename, dropDatabase, invalidate; database- and cluster-level streams; startAfter after an
 * invalidate; resume errors (260 from an invalidate token, 286 before the retained history).
 */
import { describe, expect, it } from 'vitest';
import { MongoServerError, Timestamp, type Document } from 'mongodb';
import { backendKind, useTestDb } from '../../../test/support/mongo.js';
import { take } from './support.js';

const t = useTestDb('emu_cse');

describe('event kinds on a collection stream', () => {
  it('update, replace and delete events carry documentKey and the documented fields', async () => {
    const c = t.db().collection<{ a?: number; b?: number; gone?: boolean; arr?: number[]; sub?: { x: number; y: number } }>('ev1');
    const { insertedId: id } = await c.insertOne({ a: 1, gone: true, arr: [1, 2, 3], sub: { x: 1, y: 1 } });
    const stream = c.watch([], { maxAwaitTimeMS: 100 });
    try {
      await stream.tryNext();
      await c.updateOne({ _id: id }, { $set: { a: 2, 'sub.x': 5 }, $unset: { gone: '' }, $pop: { arr: 1 } });
      await c.updateOne({ _id: id }, { $push: { arr: 9 } });
      await c.replaceOne({ _id: id }, { b: 1 });
      await c.deleteOne({ _id: id });
      const [upd, push, rep, del] = await take(stream, 4);
      expect(upd).toMatchObject({ operationType: 'update', documentKey: { _id: id }, ns: { coll: 'ev1' } });
      expect(upd!.fullDocument).toBeUndefined();
      expect(upd!.updateDescription.updatedFields).toEqual({ a: 2, 'sub.x': 5 });
      expect(upd!.updateDescription.removedFields).toEqual(['gone']);
      expect(upd!.updateDescription.truncatedArrays).toEqual([{ field: 'arr', newSize: 2 }]);
      expect(push!.updateDescription.updatedFields).toEqual({ 'arr.2': 9 });
      expect(rep).toMatchObject({ operationType: 'replace', documentKey: { _id: id }, fullDocument: { _id: id, b: 1 } });
      expect(del).toMatchObject({ operationType: 'delete', documentKey: { _id: id }, ns: { coll: 'ev1' } });
      expect(del!.fullDocument).toBeUndefined();
    } finally {
      await stream.close();
    }
  });

  it('updateLookup gives null for a document deleted before the event is read', async () => {
    const c = t.db().collection('ev2');
    const { insertedId: id } = await c.insertOne({ v: 1 });
    const stream = c.watch([{ $match: { operationType: 'update' } }], { fullDocument: 'updateLookup', maxAwaitTimeMS: 100 });
    try {
      await stream.tryNext();
      await c.updateOne({ _id: id }, { $set: { v: 2 } });
      await c.deleteOne({ _id: id });
      const [ev] = await take(stream, 1);
      expect(ev!.fullDocument).toBeNull();
    } finally {
      await stream.close();
    }
  });

  it('upserts produce insert events; findOneAndUpdate produces update events', async () => {
    const c = t.db().collection('ev3');
    const stream = c.watch([], { maxAwaitTimeMS: 100 });
    try {
      await stream.tryNext();
      await c.updateOne({ k: 1 }, { $set: { v: 1 } }, { upsert: true });
      await c.findOneAndUpdate({ k: 1 }, { $set: { v: 2 } });
      await c.findOneAndReplace({ k: 1 }, { k: 1, v: 3 });
      const evs = await take(stream, 3);
      expect(evs.map((e) => e.operationType)).toEqual(['insert', 'update', 'replace']);
    } finally {
      await stream.close();
    }
  });

  it('drop emits drop then invalidate and closes the stream; startAfter the invalidate starts afresh', async () => {
    const c = t.db().collection('ev4');
    await c.insertOne({ before: true });
    const stream = c.watch([], { maxAwaitTimeMS: 100 });
    await stream.tryNext();
    await c.drop();
    const [drop, inv] = await take(stream, 2);
    expect(drop).toMatchObject({ operationType: 'drop', ns: { db: t.db().databaseName, coll: 'ev4' } });
    expect(inv!.operationType).toBe('invalidate');
    expect(inv!.ns).toBeUndefined();
    // The invalidated stream delivers nothing more, even when the collection is written again.
    await c.insertOne({ recreated: true });
    expect(await stream.tryNext().catch(() => null)).toBeNull();
    await stream.close();

    const resumeErr = await c
      .watch([], { resumeAfter: inv!._id, maxAwaitTimeMS: 100 })
      .tryNext()
      .catch((e: unknown) => e);
    expect(resumeErr).toBeInstanceOf(MongoServerError);
    expect((resumeErr as MongoServerError).code).toBe(260);

    const fresh = c.watch([], { startAfter: inv!._id, maxAwaitTimeMS: 100 });
    try {
      await c.insertOne({ after: true });
      const evs = await take(fresh, 2);
      expect(evs.map((e) => e.fullDocument)).toMatchObject([{ recreated: true }, { after: true }]);
    } finally {
      await fresh.close();
    }
  });

  it('rename emits rename (with to) then invalidate', async () => {
    const c = t.db().collection('ev5');
    await c.insertOne({ x: 1 });
    const stream = c.watch([], { maxAwaitTimeMS: 100 });
    try {
      await stream.tryNext();
      await c.rename('ev5_renamed');
      const [ren, inv] = await take(stream, 2);
      expect(ren).toMatchObject({
        operationType: 'rename',
        ns: { db: t.db().databaseName, coll: 'ev5' },
        to: { db: t.db().databaseName, coll: 'ev5_renamed' },
      });
      expect(inv!.operationType).toBe('invalidate');
      expect(await t.db().collection('ev5_renamed').countDocuments()).toBe(1);
    } finally {
      await stream.close();
    }
  });
});

describe('database and cluster streams', () => {
  it('a database stream sees every collection of its database and nothing else', async () => {
    const db = t.db();
    const otherDb = t.client().db(`${db.databaseName}_other`);
    const stream = db.watch([], { maxAwaitTimeMS: 100 });
    try {
      await stream.tryNext();
      await db.collection('dbs_a').insertOne({ n: 1 });
      await otherDb.collection('dbs_x').insertOne({ n: 99 });
      await db.collection('dbs_b').insertOne({ n: 2 });
      const evs = await take(stream, 2);
      expect(evs.map((e) => [e.ns.coll, e.fullDocument.n])).toEqual([['dbs_a', 1], ['dbs_b', 2]]);
      expect(await stream.tryNext()).toBeNull();
    } finally {
      await stream.close();
      await otherDb.dropDatabase();
    }
  });

  it('dropDatabase: drop per collection, dropDatabase, then invalidate on a database stream', async () => {
    const db = t.client().db(`${t.db().databaseName}_dd`);
    await db.collection('c1').insertOne({ a: 1 });
    const stream = db.watch([], { maxAwaitTimeMS: 100 });
    try {
      await stream.tryNext();
      await db.dropDatabase();
      const evs = await take(stream, 3);
      expect(evs.map((e) => e.operationType)).toEqual(['drop', 'dropDatabase', 'invalidate']);
      expect(evs[0]!.ns).toEqual({ db: db.databaseName, coll: 'c1' });
      expect(evs[1]!.ns).toEqual({ db: db.databaseName });
    } finally {
      await stream.close();
    }
  });

  it('a cluster stream sees writes in every database, with ns naming each', async () => {
    const base = t.db().databaseName;
    const dbA = t.client().db(`${base}_ca`);
    const dbB = t.client().db(`${base}_cb`);
    // Other test files write concurrently: keep only this test's databases.
    const stream = t.client().watch([{ $match: { 'ns.db': { $in: [dbA.databaseName, dbB.databaseName] } } }], { maxAwaitTimeMS: 100 });
    try {
      await stream.tryNext();
      await dbA.collection('x').insertOne({ n: 1 });
      await dbB.collection('y').insertOne({ n: 2 });
      await dbA.collection('x').drop();
      const evs = await take(stream, 3);
      expect(evs.map((e) => [e.operationType, e.ns.db, e.ns.coll])).toEqual([
        ['insert', dbA.databaseName, 'x'],
        ['insert', dbB.databaseName, 'y'],
        ['drop', dbA.databaseName, 'x'],
      ]);
    } finally {
      await stream.close();
      await dbA.dropDatabase();
      await dbB.dropDatabase();
    }
  });
});

describe('resume errors', () => {
  it('startAtOperationTime before the retained history fails with 286 and NonResumableChangeStreamError', async () => {
    const c = t.db().collection('re1');
    const stream = c.watch([], { startAtOperationTime: new Timestamp({ t: 1, i: 0 }), maxAwaitTimeMS: 100 });
    const err = await stream.tryNext().catch((e: unknown) => e);
    await stream.close();
    expect(err).toBeInstanceOf(MongoServerError);
    expect((err as MongoServerError).code).toBe(286);
    expect((err as MongoServerError).hasErrorLabel('NonResumableChangeStreamError')).toBe(true);
  });

  it('a malformed resume token is rejected, with 260 on the emulator', async () => {
    const c = t.db().collection('re2');
    const stream = c.watch([], { resumeAfter: { _data: '82ZZ' }, maxAwaitTimeMS: 100 });
    const err = await stream.tryNext().catch((e: unknown) => e);
    await stream.close();
    expect(err).toBeInstanceOf(MongoServerError);
    if (backendKind() === 'emulator') expect((err as MongoServerError).code).toBe(260);
  });

  it('an unknown $changeStream option and a forbidden stage are rejected', async () => {
    const c = t.db().collection('re3');
    const bad = await t
      .db()
      .command({ aggregate: 're3', pipeline: [{ $changeStream: { bogusOption: 1 } }], cursor: {} })
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(MongoServerError);
    const group = c.watch([{ $group: { _id: null } }] as Document[], { maxAwaitTimeMS: 100 });
    const err = await group.tryNext().catch((e: unknown) => e);
    await group.close();
    expect(err).toBeInstanceOf(MongoServerError);
  });
});
