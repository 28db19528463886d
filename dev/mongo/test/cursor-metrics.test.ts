/**
 * serverStatus `metrics.cursor` and the optional change-stream budget.
 *
 * Conformance part (the suite's backend, mongod or the emulator): the shape mongod gives
 * `metrics.cursor.open` (`total`, `noTimeout`, `pinned`, int64) and an open change stream counted in it.
 * EMULATOR-SPECIFIC part (its own emulator instance, so no other test file's cursors are counted):
 * exact counts as cursors open, are pinned by a waiting getMore, exhaust, are killed, and as their
 * session is killed or ended; and `maxChangeStreams` / EMULATOR_MAX_CHANGE_STREAMS, which refuses one
 * change stream more than allowed with 8000 AtlasError (how Atlas reports limits it enforces).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Long, MongoClient, MongoServerError, type Document } from 'mongodb';
import { maxChangeStreamsSetting, startEmulator, type RunningEmulator } from '../server.js';
import { useTestDb } from '../../../test/support/mongo.js';
import { until } from './support.js';

const t = useTestDb('emu_cursor_metrics');

async function cursorMetrics(client: MongoClient): Promise<Document> {
  const status = await client.db('admin').command({ serverStatus: 1 }, { promoteLongs: false } as never);
  return status.metrics.cursor as Document;
}

describe('serverStatus metrics.cursor (conformance)', () => {
  it('reports open.total / noTimeout / pinned as int64 and counts an open change stream', async () => {
    const stream = t.db().collection('m').watch();
    try {
      await stream.tryNext(); // the aggregate has run: the server holds the change-stream cursor
      const m = await cursorMetrics(t.client());
      for (const k of ['total', 'noTimeout', 'pinned']) expect(m.open[k]).toBeInstanceOf(Long);
      expect((m.open.total as Long).toNumber()).toBeGreaterThanOrEqual(1);
    } finally {
      await stream.close();
    }
  });
});

describe('cursor counts and the change-stream budget (emulator-specific)', () => {
  let emu: RunningEmulator;
  let client: MongoClient;
  const open = async () => {
    const m = await cursorMetrics(client);
    return { total: (m.open.total as Long).toNumber(), noTimeout: (m.open.noTimeout as Long).toNumber(), pinned: (m.open.pinned as Long).toNumber() };
  };

  beforeAll(async () => {
    emu = await startEmulator({ maxChangeStreams: 2 });
    client = new MongoClient(emu.uri, { serverSelectionTimeoutMS: 5_000 });
    await client.connect();
    await client.db('m').collection('docs').insertMany([1, 2, 3, 4, 5].map((n) => ({ n })));
  });
  afterAll(async () => {
    await client?.close();
    await emu?.close();
  });

  it('counts find and change-stream cursors until exhausted, closed or their session is killed or ended', async () => {
    const docs = client.db('m').collection('docs');
    expect(await open()).toEqual({ total: 0, noTimeout: 0, pinned: 0 });

    const stream = docs.watch([], { maxAwaitTimeMS: 50 });
    await stream.tryNext();
    expect((await open()).total).toBe(1);

    const cursor = docs.find({}, { batchSize: 2 });
    await cursor.next(); // first batch of 2: the server keeps a cursor for the other 3
    const noTimeout = docs.find({}, { batchSize: 2, noCursorTimeout: true });
    await noTimeout.next();
    expect(await open()).toEqual({ total: 3, noTimeout: 1, pinned: 0 });

    await cursor.toArray(); // exhausted: the last getMore returns cursor id 0
    expect((await open()).total).toBe(2);
    await noTimeout.close(); // killCursors
    expect(await open()).toEqual({ total: 1, noTimeout: 0, pinned: 0 });
    await stream.close();
    expect((await open()).total).toBe(0);

    // killSessions and endSessions close the cursors the session opened.
    for (const command of ['killSessions', 'endSessions']) {
      const session = client.startSession();
      const held = docs.find({}, { batchSize: 1, session });
      await held.next();
      expect((await open()).total).toBe(1);
      await client.db('admin').command({ [command]: [session.id] });
      expect((await open()).total).toBe(0);
      await held.close().catch(() => {});
      await session.endSession();
    }
  });

  it('counts a change-stream cursor as pinned while its getMore waits', async () => {
    const other = new MongoClient(emu.uri, { serverSelectionTimeoutMS: 5_000 });
    await other.connect();
    const stream = other.db('m').collection('docs').watch([], { maxAwaitTimeMS: 3_000 });
    try {
      await stream.tryNext(); // opens the cursor (first batch comes back at once)
      const waiting = stream.tryNext(); // a getMore that waits up to 3 s for an event
      await until(async () => (await open()).pinned === 1);
      await client.db('m').collection('docs').insertOne({ n: 6 });
      expect((await waiting)?.operationType).toBe('insert');
      await until(async () => (await open()).pinned === 0);
    } finally {
      await stream.close();
      await other.close();
    }
  });

  it('refuses one change stream more than maxChangeStreams with 8000 AtlasError, and allows it again after one closes', async () => {
    const coll = client.db('m').collection('docs');
    const a = coll.watch();
    const b = client.db('m').watch();
    await a.tryNext();
    await b.tryNext();
    const c = coll.watch();
    const err = await c.tryNext().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoServerError);
    expect((err as MongoServerError).code).toBe(8000);
    expect((err as MongoServerError).codeName).toBe('AtlasError');
    expect((err as MongoServerError).message).toMatch(/too many open change streams: this server allows 2/);
    expect((err as MongoServerError).errorLabels).toEqual([]);
    await c.close();
    // Other cursors do not count against the budget.
    const find = coll.find({}, { batchSize: 1 });
    await find.next();
    await a.close();
    const d = coll.watch();
    expect(await d.tryNext()).toBeNull();
    expect((await open()).total).toBe(3); // b, d and the find cursor
    await Promise.all([b.close(), d.close(), find.close()]);
  });

  it('takes the budget from EMULATOR_MAX_CHANGE_STREAMS when the option is not given, and refuses a bad value', () => {
    expect(maxChangeStreamsSetting(undefined, '3')).toBe(3);
    expect(maxChangeStreamsSetting(5, '3')).toBe(5);
    expect(maxChangeStreamsSetting(undefined, undefined)).toBeUndefined();
    expect(maxChangeStreamsSetting(undefined, '')).toBeUndefined();
    expect(() => maxChangeStreamsSetting(undefined, 'ten')).toThrow(/EMULATOR_MAX_CHANGE_STREAMS must be a positive integer, got ten/);
    expect(() => maxChangeStreamsSetting(0, undefined)).toThrow(/positive integer/);
  });
});
