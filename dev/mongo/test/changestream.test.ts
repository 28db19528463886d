/**
 * Conformance: collection change streams through the real driver — tryNext(), resume tokens and
 * postBatchResumeToken, resumeAfter / startAfter / startAtOperationTime, batchSize, awaiting getMore,
 * fullDocument, and the user pipeline after $changeStream.
 */
import { describe, expect, it } from 'vitest';
import { MongoClient, type Document, type Timestamp } from 'mongodb';
import { useTestDb } from '../../../test/support/mongo.js';
import { take, tokenData, until } from './support.js';

const t = useTestDb('emu_cs');

describe('collection change stream', () => {
  it('first tryNext() opens the stream, returns null and sets a resume token', async () => {
    const c = t.db().collection('cs1');
    const stream = c.watch([], { maxAwaitTimeMS: 100 });
    try {
      expect(stream.resumeToken).toBeNull();
      expect(await stream.tryNext()).toBeNull();
      expect(tokenData(stream.resumeToken)).toMatch(/^82[0-9A-F]{16}/);
    } finally {
      await stream.close();
    }
  });

  it('delivers insert events with the documented shape', async () => {
    const c = t.db().collection('cs2');
    const stream = c.watch([], { maxAwaitTimeMS: 200 });
    try {
      await stream.tryNext();
      const { insertedId } = await c.insertOne({ a: 1 });
      const [ev] = await take(stream, 1);
      expect(ev).toMatchObject({
        operationType: 'insert',
        ns: { db: t.db().databaseName, coll: 'cs2' },
        documentKey: { _id: insertedId },
        fullDocument: { _id: insertedId, a: 1 },
      });
      const e = ev as Document;
      expect(e.clusterTime?._bsontype).toBe('Timestamp');
      expect(e.wallTime).toBeInstanceOf(Date);
      expect(e._id._data).toMatch(/^82[0-9A-F]{16}/);
    } finally {
      await stream.close();
    }
  });

  it('postBatchResumeToken advances on empty batches when other collections are written', async () => {
    const c = t.db().collection('cs3');
    const other = t.db().collection('cs3_other');
    const stream = c.watch([], { maxAwaitTimeMS: 50 });
    try {
      await stream.tryNext();
      const first = tokenData(stream.resumeToken);
      await other.insertOne({ unrelated: true });
      let advanced = first;
      const until = Date.now() + 10_000;
      while (advanced <= first && Date.now() < until) {
        expect(await stream.tryNext()).toBeNull();
        advanced = tokenData(stream.resumeToken);
      }
      expect(advanced > first).toBe(true);
    } finally {
      await stream.close();
    }
  });

  it('an awaiting getMore returns as soon as a matching write lands', async () => {
    const c = t.db().collection('cs4');
    const stream = c.watch([], { maxAwaitTimeMS: 5_000 });
    try {
      // Driver 7.x: the first tryNext() sends the aggregate and, on an empty first batch, one getMore.
      const started = Date.now();
      const pending = stream.tryNext();
      await until(() => stream.resumeToken !== null);
      await c.insertOne({ late: true });
      const ev = await pending;
      expect(ev?.operationType).toBe('insert');
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      await stream.close();
    }
  });

  it('an empty getMore waits about maxAwaitTimeMS and does not block other connections', async () => {
    const c = t.db().collection('cs5');
    const stream = c.watch([], { maxAwaitTimeMS: 1500 });
    try {
      await stream.tryNext();
      const started = Date.now();
      const waiting = stream.tryNext();
      // Another operation on the same client runs while the getMore waits.
      const pingStart = Date.now();
      await t.client().db('admin').command({ ping: 1 });
      // Well under the getMore's wait: the ping did not queue behind it.
      expect(Date.now() - pingStart).toBeLessThan(1000);
      expect(await waiting).toBeNull();
      expect(Date.now() - started).toBeGreaterThanOrEqual(1200);
    } finally {
      await stream.close();
    }
  });

  it('many clients with waiting change streams all wake on one write; writers are never blocked', async () => {
    const c = t.db().collection('cs11');
    const clients = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const client = new MongoClient(t.uri, { serverSelectionTimeoutMS: 5_000 });
        return client.connect();
      }),
    );
    const streams = clients.map((cl) => cl.db(t.db().databaseName).collection('cs11').watch([], { maxAwaitTimeMS: 5_000 }));
    try {
      const pending = streams.map((s) => s.tryNext());
      await until(() => streams.every((s) => s.resumeToken !== null));
      const started = Date.now();
      await c.insertOne({ wake: 'all' });
      const evs = await Promise.all(pending);
      expect(evs.every((e) => e?.operationType === 'insert')).toBe(true);
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      await Promise.all(streams.map((s) => s.close()));
      await Promise.all(clients.map((cl) => cl.close()));
    }
  });

  it('resumeAfter a token replays the events after it, in order', async () => {
    const c = t.db().collection('cs6');
    const stream = c.watch([], { maxAwaitTimeMS: 100 });
    await stream.tryNext();
    await c.insertMany([{ n: 1 }, { n: 2 }, { n: 3 }]);
    const evs = await take(stream, 3);
    await stream.close();
    const resumed = c.watch([], { resumeAfter: evs[0]!._id, maxAwaitTimeMS: 100 });
    try {
      const again = await take(resumed, 2);
      expect(again.map((e) => e.fullDocument.n)).toEqual([2, 3]);
      expect(tokenData(again[1]!._id)).toBe(tokenData(evs[2]!._id));
    } finally {
      await resumed.close();
    }
  });

  it('startAfter a token and startAtOperationTime (inclusive) start where asked', async () => {
    const c = t.db().collection('cs7');
    const stream = c.watch([], { maxAwaitTimeMS: 100 });
    await stream.tryNext();
    await c.insertMany([{ n: 1 }, { n: 2 }]);
    const evs = await take(stream, 2);
    await stream.close();
    const after = c.watch([], { startAfter: evs[0]!._id, maxAwaitTimeMS: 100 });
    try {
      expect(((await take(after, 1))[0] as Document).fullDocument.n).toBe(2);
    } finally {
      await after.close();
    }
    const at = c.watch([], { startAtOperationTime: (evs[0] as Document).clusterTime as Timestamp, maxAwaitTimeMS: 100 });
    try {
      expect((await take(at, 2)).map((e) => e.fullDocument.n)).toEqual([1, 2]);
    } finally {
      await at.close();
    }
  });

  it('the saved resume token after a drained batch resumes without duplicates or gaps', async () => {
    const c = t.db().collection('cs8');
    const stream = c.watch([], { maxAwaitTimeMS: 50, batchSize: 2 });
    await stream.tryNext();
    await c.insertMany([{ n: 1 }, { n: 2 }, { n: 3 }]);
    const firstTwo = await take(stream, 2);
    expect(firstTwo.map((e) => e.fullDocument.n)).toEqual([1, 2]);
    const saved = stream.resumeToken;
    await stream.close();
    await c.insertOne({ n: 4 });
    const resumed = c.watch([], { resumeAfter: saved, maxAwaitTimeMS: 50 });
    try {
      expect((await take(resumed, 2)).map((e) => e.fullDocument.n)).toEqual([3, 4]);
    } finally {
      await resumed.close();
    }
  });

  it('a $match pipeline filters events and fullDocument updateLookup returns the current document', async () => {
    const c = t.db().collection('cs9');
    const stream = c.watch([{ $match: { operationType: { $in: ['update'] }, 'fullDocument.keep': true } }], {
      fullDocument: 'updateLookup',
      maxAwaitTimeMS: 100,
    });
    try {
      await stream.tryNext();
      const { insertedId } = await c.insertOne({ keep: true, v: 0 });
      await c.insertOne({ keep: false, v: 0 });
      await c.updateOne({ _id: insertedId }, { $set: { v: 1 } });
      await c.updateOne({ keep: false }, { $set: { v: 1 } });
      const [ev] = await take(stream, 1);
      expect(ev).toMatchObject({
        operationType: 'update',
        documentKey: { _id: insertedId },
        fullDocument: { _id: insertedId, keep: true, v: 1 },
        updateDescription: { updatedFields: { v: 1 }, removedFields: [] },
      });
      expect(await stream.tryNext()).toBeNull();
    } finally {
      await stream.close();
    }
  });

  it('$project after $changeStream reshapes events and keeps _id', async () => {
    const c = t.db().collection('cs10');
    const stream = c.watch([{ $project: { operationType: 1, 'fullDocument.a': 1 } }], { maxAwaitTimeMS: 100 });
    try {
      await stream.tryNext();
      await c.insertOne({ a: 7, b: 8 });
      const [ev] = await take(stream, 1);
      const e = ev as Document;
      expect(e.operationType).toBe('insert');
      expect(e.fullDocument).toEqual({ a: 7 });
      expect(e.ns).toBeUndefined();
    } finally {
      await stream.close();
    }
  });
});
