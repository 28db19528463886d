/**
 * Conformance: the 16 MiB document limit and large change events (mongod 7.0+ / 6.0.9+ for
 * `$changeStreamSplitLargeEvent`; docs "Large Change Events", server change_stream_split_event_helpers.cpp).
 *
 * - A document of exactly 16 MiB (16,777,216 bytes) is stored; one byte more is refused (BadValue 2);
 *   an update that would make a document larger fails with 17419.
 * - An event over mongod's internal limit (16 MiB + 16 KiB) fails the stream with BSONObjectTooLarge
 *   (10334), no label, and resuming before it fails again; one just over 16 MiB is returned whole.
 * - With `$changeStreamSplitLargeEvent` last, the event comes as fragments with
 *   `splitEvent: {fragment, of}` and their own resume tokens; fields go by ascending size; resuming
 *   from a fragment's token continues with the next fragment; later events follow.
 */
import { describe, expect, it } from 'vitest';
import { BSON, MongoServerError, type ChangeStream, type Document, type ResumeToken } from 'mongodb';
import { useTestDb } from '../../../test/support/mongo.js';
import { take, tokenData } from './support.js';

const t = useTestDb('emu_large_events');
const MiB = 1024 * 1024;
/** A collection of this file's database whose documents have string `_id`s. */
const collection = (name: string) => t.db().collection<{ _id: string } & Document>(name);

/** A document `{_id, s}` whose BSON is exactly `bytes` long. */
function docOfSize(bytes: number, fields: { _id: string }): { _id: string; s: string } {
  const base = { ...fields, s: '' };
  return { ...fields, s: 'x'.repeat(bytes - BSON.calculateObjectSize(base)) };
}

/**
 * Polls the stream until it throws; returns the error and the events read before it. (Events in
 * the same batch as the failing one are not returned: the whole getMore fails.)
 */
async function failure(stream: ChangeStream): Promise<{ error: MongoServerError; events: Document[] }> {
  const events: Document[] = [];
  for (let i = 0; i < 50; i++) {
    try {
      const ev = await stream.tryNext();
      if (ev) events.push(ev);
    } catch (error) {
      return { error: error as MongoServerError, events };
    }
  }
  throw new Error('the change stream did not fail');
}

describe('document size limit', () => {
  it('stores a document of exactly 16 MiB and refuses one byte more with BadValue (2)', async () => {
    const c = collection('limit');
    const max = docOfSize(16 * MiB, { _id: 'max' });
    expect(BSON.calculateObjectSize(max)).toBe(16 * MiB);
    await c.insertOne(max);
    expect(((await c.findOne({ _id: 'max' })) as Document).s.length).toBe(max.s.length);
    // Sent as a raw command so the server, not the driver, judges the size.
    const over = docOfSize(16 * MiB + 1, { _id: 'over' });
    const reply = await t.db().command({ insert: 'limit', documents: [over] });
    expect(reply.n).toBe(0);
    expect(reply.writeErrors[0].code).toBe(2);
    expect(reply.writeErrors[0].errmsg).toBe(`object to insert too large. size in bytes: ${16 * MiB + 1}, max size: ${16 * MiB}`);
    // An update whose result would exceed 16 MiB fails with 17419 and leaves the document as it was.
    await c.insertOne({ _id: 'grow', a: 'a'.repeat(9 * MiB) });
    const err = await c.updateOne({ _id: 'grow' }, { $set: { b: 'b'.repeat(8 * MiB) } }).catch((e: unknown) => e);
    expect((err as MongoServerError).code).toBe(17419);
    expect(((await c.findOne({ _id: 'grow' })) as Document).b).toBeUndefined();
  });
});

describe('large change events', () => {
  it('returns an insert event just over 16 MiB whole (a reply larger than 16 MiB)', async () => {
    const c = collection('whole');
    const stream = c.watch();
    try {
      await stream.tryNext();
      await c.insertOne(docOfSize(16 * MiB, { _id: 'big' }));
      const [ev] = await take(stream, 1);
      expect(ev!.fullDocument.s.length).toBeGreaterThan(16 * MiB - 100);
      expect(BSON.calculateObjectSize(ev!)).toBeGreaterThan(16 * MiB);
    } finally {
      await stream.close();
    }
  });

  it('fails with BSONObjectTooLarge (10334) on an event over the limit, and again when resumed before it', async () => {
    const c = collection('toolarge');
    const stream = c.watch([], { fullDocument: 'updateLookup' });
    let before: ResumeToken | undefined;
    try {
      await stream.tryNext();
      before = stream.resumeToken;
      await c.insertOne({ _id: 'sub', data: { blob: 'a'.repeat(9.5 * MiB) } });
      // updateDescription (8.5 MiB) + looked-up fullDocument (8.5 MiB): about 17 MiB.
      await c.updateOne({ _id: 'sub' }, { $set: { 'data.blob': 'b'.repeat(8.5 * MiB) } });
      await c.insertOne({ _id: 'ordinary' });
      const { error: err, events } = await failure(stream);
      expect(events.map((e) => `${e.operationType}:${e.documentKey._id}`)).toEqual(events.length ? ['insert:sub'] : []);
      expect(err).toBeInstanceOf(MongoServerError);
      expect(err.code).toBe(10334);
      expect(err.codeName).toBe('BSONObjectTooLarge');
      expect(err.message).toMatch(/BSONObj size: \d+ \(0x[0-9A-F]+\) is invalid/);
      expect(err.errorLabels ?? []).not.toContain('ResumableChangeStreamError');
    } finally {
      await stream.close();
    }
    const again = c.watch([], { fullDocument: 'updateLookup', resumeAfter: before });
    try {
      const { error, events } = await failure(again);
      expect(error.code).toBe(10334);
      expect(events.every((e) => e.operationType === 'insert' && e.documentKey._id === 'sub')).toBe(true);
    } finally {
      await again.close();
    }
  });

  it('splits it with $changeStreamSplitLargeEvent into fragments that resume one by one', async () => {
    const c = collection('split');
    const pipeline = [{ $changeStreamSplitLargeEvent: {} }];
    const stream = c.watch(pipeline, { fullDocument: 'updateLookup' });
    let fragments: Document[];
    try {
      await stream.tryNext();
      await c.insertOne({ _id: 'sub', data: { blob: 'a'.repeat(9.5 * MiB) } });
      await c.updateOne({ _id: 'sub' }, { $set: { 'data.blob': 'b'.repeat(8.5 * MiB) } });
      await c.insertOne({ _id: 'ordinary' });
      const events = await take(stream, 4);
      expect(events[0]!.operationType).toBe('insert');
      expect(events[0]!.splitEvent).toBeUndefined(); // 9.5 MiB: not split
      fragments = events.slice(1, 3);
      expect(events[3]!.operationType).toBe('insert');
      expect(events[3]!.documentKey._id).toBe('ordinary');
    } finally {
      await stream.close();
    }
    expect(fragments.map((f) => f.splitEvent)).toEqual([
      { fragment: 1, of: 2 },
      { fragment: 2, of: 2 },
    ]);
    expect(tokenData(fragments[0]!._id)).not.toBe(tokenData(fragments[1]!._id));
    // Fields by ascending size: the small ones and the smaller large one first, the largest last.
    const [first, second] = fragments.map((f) => Object.keys(f).filter((k) => k !== '_id' && k !== 'splitEvent'));
    for (const k of ['operationType', 'clusterTime', 'ns', 'documentKey']) expect(first).toContain(k);
    expect([...first!, ...second!].filter((k) => k === 'fullDocument' || k === 'updateDescription').sort()).toEqual(['fullDocument', 'updateDescription']);
    expect(second).toHaveLength(1);
    const whole = Object.assign({}, ...fragments) as Document;
    expect(whole.operationType).toBe('update');
    expect(whole.updateDescription.updatedFields['data.blob']).toHaveLength(8.5 * MiB);
    expect(whole.fullDocument.data.blob).toHaveLength(8.5 * MiB);

    // Resuming from fragment 1 gives fragment 2 (same token), then the next event.
    const resumed = c.watch(pipeline, { fullDocument: 'updateLookup', resumeAfter: fragments[0]!._id });
    try {
      const [next, after] = await take(resumed, 2);
      expect(next!.splitEvent).toEqual({ fragment: 2, of: 2 });
      expect(tokenData(next!._id)).toBe(tokenData(fragments[1]!._id));
      expect(after!.documentKey._id).toBe('ordinary');
    } finally {
      await resumed.close();
    }
  });
});
