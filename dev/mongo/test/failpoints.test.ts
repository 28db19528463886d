/**
 * Conformance: fault injection through mongod's `configureFailPoint: 'failCommand'` — modes
 * (times / alwaysOn / off / skip), errorCode, errorLabels, closeConnection, blockConnection, appName —
 * and how the real driver reacts (retryable writes, change-stream resume).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MongoClient, MongoServerError } from 'mongodb';
import { clearFailPoints, configureFailPoint, disableFailPoint, failCommand, useTestDb } from '../../../test/support/mongo.js';
import { take } from './support.js';

// Fail points are server-wide; failCommand() scopes each one to this file's client (appName).
const t = useTestDb('emu_fp');

afterEach(async () => {
  await clearFailPoints(t.client());
});

describe('failCommand', () => {
  it('times: 1 fails the next matching command once with the given code', async () => {
    const c = t.db().collection('fp1');
    await c.insertOne({ a: 1 });
    await failCommand(t.client(), { failCommands: ['find'], errorCode: 2 });
    const err = await c.findOne({}).catch((e: unknown) => e);
    expect((err as MongoServerError).code).toBe(2);
    expect(await c.findOne({})).toMatchObject({ a: 1 });
  });

  it('alwaysOn keeps failing until mode off; other commands are untouched', async () => {
    const c = t.db().collection('fp2');
    await failCommand(t.client(), { failCommands: ['count'], errorCode: 96 }, 'alwaysOn');
    for (let i = 0; i < 3; i++) {
      expect(((await c.estimatedDocumentCount().catch((e: unknown) => e)) as MongoServerError).code).toBe(96);
    }
    await c.insertOne({ ok: true });
    await clearFailPoints(t.client());
    expect(await c.estimatedDocumentCount()).toBe(1);
  });

  it('skip lets the first N matches through', async () => {
    const c = t.db().collection('fp3');
    await c.insertOne({ a: 1 });
    await failCommand(t.client(), { failCommands: ['find'], errorCode: 2 }, { skip: 1 });
    expect(await c.findOne({})).not.toBeNull();
    expect(((await c.findOne({}).catch((e: unknown) => e)) as MongoServerError).code).toBe(2);
  });

  it('errorLabels are attached to the error as given', async () => {
    await failCommand(t.client(), { failCommands: ['ping'], errorCode: 91, errorLabels: ['CustomLabel'] });
    const err = await t.client().db('admin').command({ ping: 1 }).catch((e: unknown) => e);
    expect((err as MongoServerError).code).toBe(91);
    expect((err as MongoServerError).hasErrorLabel('CustomLabel')).toBe(true);
  });

  it('closeConnection on insert: the driver retries the write once and it is applied exactly once', async () => {
    const c = t.db().collection('fp4');
    await failCommand(t.client(), { failCommands: ['insert'], closeConnection: true });
    await c.insertOne({ k: 'once' });
    expect(await c.countDocuments({ k: 'once' })).toBe(1);
  });

  it('closeConnection with retryWrites off surfaces a network error', async () => {
    const client = new MongoClient(t.uri, { retryWrites: false, appName: `${t.db().databaseName}_noretry`, serverSelectionTimeoutMS: 5_000 });
    try {
      await client.connect();
      await failCommand(client, { failCommands: ['insert'], closeConnection: true });
      const err = await client.db(t.db().databaseName).collection('fp5').insertOne({ x: 1 }).catch((e: unknown) => e);
      expect((err as Error).name).toMatch(/MongoNetworkError/);
    } finally {
      await client.close();
    }
  });

  it('blockConnection delays only the blocked command', async () => {
    await failCommand(t.client(), { failCommands: ['ping'], blockConnection: true, blockTimeMS: 1500 });
    const started = Date.now();
    const blocked = t.client().db('admin').command({ ping: 1 });
    const otherStart = Date.now();
    await t.db().collection('fp6').insertOne({ during: true });
    const otherMs = Date.now() - otherStart;
    await blocked;
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    // Well under the block: the insert did not wait for the blocked ping.
    expect(otherMs).toBeLessThan(1000);
  });

  it('appName limits the fail point to one client', async () => {
    const target = `${t.db().databaseName}_target`;
    const named = new MongoClient(t.uri, { appName: target, serverSelectionTimeoutMS: 5_000 });
    try {
      await named.connect();
      await failCommand(t.client(), { failCommands: ['find'], errorCode: 2, appName: target }, 'alwaysOn');
      expect(await t.db().collection('fp7').findOne({})).toBeNull();
      const err = await named.db(t.db().databaseName).collection('fp7').findOne({}).catch((e: unknown) => e);
      expect((err as MongoServerError).code).toBe(2);
    } finally {
      await named.close();
    }
  });

  it('failCommand on getMore adds no label by itself: the error reaches the caller, as on mongod', async () => {
    const c = t.db().collection('fp8');
    const stream = c.watch([], { maxAwaitTimeMS: 100 });
    try {
      await stream.tryNext();
      // mongod evaluates failCommand before the cursor is checked out, so it cannot know the
      // cursor belongs to a change stream and attaches no ResumableChangeStreamError.
      await failCommand(t.client(), { failCommands: ['getMore'], errorCode: 6 });
      const err = await stream.tryNext().catch((e: unknown) => e);
      expect((err as MongoServerError).code).toBe(6);
      expect((err as MongoServerError).hasErrorLabel('ResumableChangeStreamError')).toBe(false);
    } finally {
      await stream.close();
    }
  });

  it("failCommand's errorLabels ResumableChangeStreamError makes the driver resume without losing events", async () => {
    const c = t.db().collection('fp8b');
    const stream = c.watch([], { maxAwaitTimeMS: 100 });
    try {
      await stream.tryNext();
      await c.insertOne({ n: 1 });
      await failCommand(t.client(), { failCommands: ['getMore'], errorCode: 6, errorLabels: ['ResumableChangeStreamError'] });
      await c.insertOne({ n: 2 });
      const evs = await take(stream, 2);
      expect(evs.map((e) => e.fullDocument.n)).toEqual([1, 2]);
    } finally {
      await stream.close();
    }
  });

  it('failGetMoreAfterCursorCheckout: a retriable getMore error is labelled resumable and the stream resumes without losing events', async () => {
    const c = t.db().collection('fp8c');
    const stream = c.watch([], { maxAwaitTimeMS: 100 });
    try {
      await stream.tryNext();
      await c.insertOne({ n: 1 });
      await configureFailPoint(t.client(), { configureFailPoint: 'failGetMoreAfterCursorCheckout', mode: { times: 1 }, data: { errorCode: 6 } });
      await c.insertOne({ n: 2 });
      const evs = await take(stream, 2);
      expect(evs.map((e) => e.fullDocument.n)).toEqual([1, 2]);
      // The resume went through the fail point: it fired once.
      const probe = await t.client().db('admin').command({ configureFailPoint: 'failGetMoreAfterCursorCheckout', mode: 'off' });
      expect(probe.count).toBe(1);
    } finally {
      await disableFailPoint(t.client(), 'failGetMoreAfterCursorCheckout');
      await stream.close();
    }
  });

  it('failGetMoreAfterCursorCheckout without errorCode fails with InternalError, which is not resumable', async () => {
    const c = t.db().collection('fp8d');
    await c.insertMany([{ a: 1 }, { a: 2 }, { a: 3 }]);
    const cursor = c.find({}, { batchSize: 1 });
    try {
      await cursor.next();
      await configureFailPoint(t.client(), { configureFailPoint: 'failGetMoreAfterCursorCheckout', mode: { times: 1 }, data: {} });
      const err = await cursor.next().catch((e: unknown) => e);
      expect((err as MongoServerError).code).toBe(1);
      expect((err as MongoServerError).hasErrorLabel('ResumableChangeStreamError')).toBe(false);
    } finally {
      await disableFailPoint(t.client(), 'failGetMoreAfterCursorCheckout');
      await cursor.close();
    }
  });

  it("a writeConcernError carries the fail point's errorLabels: with RetryableWriteError the driver retries the write", async () => {
    const c = t.db().collection('fp10');
    await failCommand(t.client(), {
      failCommands: ['insert'],
      writeConcernError: { code: 91, errmsg: 'Replication is being shut down' },
      errorLabels: ['RetryableWriteError'],
    });
    const r = await c.insertOne({ k: 'wce' });
    expect(r.acknowledged).toBe(true);
    expect(await c.countDocuments({ k: 'wce' })).toBe(1);
  });

  it('a writeConcernError without errorLabels on a retryable write with a retriable code gets RetryableWriteError', async () => {
    const client = new MongoClient(t.uri, { retryWrites: true, appName: `${t.db().databaseName}_wce`, serverSelectionTimeoutMS: 5_000, monitorCommands: true });
    const replies: unknown[] = [];
    client.on('commandSucceeded', (e) => {
      if (e.commandName === 'insert') replies.push(e.reply);
    });
    try {
      await client.connect();
      await failCommand(client, { failCommands: ['insert'], writeConcernError: { code: 91, errmsg: 'Replication is being shut down' } });
      await client.db(t.db().databaseName).collection('fp11').insertOne({ k: 'wce2' });
      // The first reply carried the label (so the driver retried); the retry succeeded.
      expect(replies).toHaveLength(2);
      expect(replies[0]).toMatchObject({ errorLabels: ['RetryableWriteError'], writeConcernError: { code: 91 } });
      expect(await t.db().collection('fp11').countDocuments({ k: 'wce2' })).toBe(1);
    } finally {
      await client.close();
    }
  });

  it('a non-resumable getMore error reaches the caller', async () => {
    const c = t.db().collection('fp9');
    const stream = c.watch([], { maxAwaitTimeMS: 100 });
    try {
      await stream.tryNext();
      await failCommand(t.client(), { failCommands: ['getMore'], errorCode: 280 });
      const err = await stream.tryNext().catch((e: unknown) => e);
      expect((err as MongoServerError).code).toBe(280);
    } finally {
      await stream.close();
    }
  });
});
