/**
 * Conformance: handshake and admin surface — hello as a replica-set primary, direct connections,
 * buildInfo, serverStatus, replSetGetStatus, listDatabases, create/drop/renameCollection, indexes
 * (unique, compound, TTL accepted, listIndexes, dropIndexes), w:0 writes (moreToCome), unknown commands.
 */
import { describe, expect, it } from 'vitest';
import { MongoClient, MongoServerError } from 'mongodb';
import { backendKind, useTestDb } from '../../../test/support/mongo.js';
import { until } from './support.js';

const t = useTestDb('emu_admin');

describe('handshake and status', () => {
  it('hello describes a writable replica-set primary with sessions', async () => {
    const hello = await t.client().db('admin').command({ hello: 1 });
    expect(hello.isWritablePrimary).toBe(true);
    expect(typeof hello.setName).toBe('string');
    expect(hello.hosts).toContain(hello.primary);
    expect(hello.maxWireVersion).toBeGreaterThanOrEqual(17);
    expect(hello.logicalSessionTimeoutMinutes).toBeGreaterThan(0);
    expect(hello.compression).toBeUndefined();
    // The emulator never offers the streaming (awaitable) hello protocol; mongod does.
    if (backendKind() === 'emulator') expect(hello.topologyVersion).toBeUndefined();
    expect(hello.operationTime?._bsontype).toBe('Timestamp');
    expect(hello.$clusterTime.clusterTime._bsontype).toBe('Timestamp');
    const legacy = await t.client().db('admin').command({ isMaster: 1 });
    expect(legacy.ismaster).toBe(true);
  });

  it('works over a direct connection too', async () => {
    const url = new URL(t.uri);
    const direct = new MongoClient(`mongodb://${url.host}/?directConnection=true`, { serverSelectionTimeoutMS: 5_000 });
    try {
      await direct.connect();
      const c = direct.db(t.db().databaseName).collection('direct');
      await c.insertOne({ via: 'direct' });
      expect(await c.countDocuments()).toBe(1);
    } finally {
      await direct.close();
    }
  });

  it('buildInfo, serverStatus, replSetGetStatus and ping answer', async () => {
    const admin = t.client().db('admin');
    const info = await admin.command({ buildInfo: 1 });
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.versionArray).toHaveLength(4);
    const status = await admin.command({ serverStatus: 1 });
    expect(status.connections.current).toBeGreaterThan(0);
    const rs = await admin.command({ replSetGetStatus: 1 });
    expect(rs.myState).toBe(1);
    expect(rs.members.some((m: { stateStr: string }) => m.stateStr === 'PRIMARY')).toBe(true);
    expect(await admin.command({ ping: 1 })).toMatchObject({ ok: 1 });
  });

  it('an unknown command fails with CommandNotFound (59)', async () => {
    const err = await t.db().command({ noSuchThing: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoServerError);
    expect((err as MongoServerError).code).toBe(59);
    expect((err as MongoServerError).codeName).toBe('CommandNotFound');
    expect((err as MongoServerError).message).toContain("no such command: 'noSuchThing'");
  });

  it('a w:0 write (OP_MSG moreToCome) gets no reply and the connection keeps working', async () => {
    const c = t.db().collection('w0');
    await c.insertOne({ fireAndForget: true }, { writeConcern: { w: 0 } });
    expect(await t.client().db('admin').command({ ping: 1 })).toMatchObject({ ok: 1 });
    await until(async () => (await c.countDocuments({ fireAndForget: true })) === 1);
  });

  it('sessions: explicit session reads its own writes; client.close() sends endSessions cleanly', async () => {
    const client = new MongoClient(t.uri, { serverSelectionTimeoutMS: 5_000 });
    await client.connect();
    const session = client.startSession();
    const c = client.db(t.db().databaseName).collection('sess');
    await c.insertOne({ s: 1 }, { session });
    expect(await c.findOne({ s: 1 }, { session })).not.toBeNull();
    await session.endSession();
    await client.close();
    expect(await t.client().db('admin').command({ ping: 1 })).toMatchObject({ ok: 1 });
  });
});

describe('namespaces', () => {
  it('create, listCollections, listDatabases, drop and dropDatabase', async () => {
    const db = t.client().db(`${t.db().databaseName}_ns`);
    await db.createCollection('made');
    await db.createCollection('made'); // identical options: allowed since 7.0
    expect((await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name)).toEqual(['made']);
    const dbs = await t.client().db('admin').admin().listDatabases();
    expect(dbs.databases.map((d) => d.name)).toContain(db.databaseName);
    expect(await db.collection('made').drop()).toBe(true);
    // Dropping a missing collection is a no-op since 7.0 (6.0 answered "ns not found", which the driver maps to false).
    await expect(db.collection('never').drop()).resolves.toBeTypeOf('boolean');
    await db.collection('again').insertOne({});
    expect(await db.dropDatabase()).toBe(true);
    expect((await db.listCollections().toArray()).length).toBe(0);
  });

  it('renameCollection moves documents and indexes; an existing target needs dropTarget', async () => {
    const db = t.db();
    const src = db.collection('ren_src');
    await src.insertMany([{ u: 1 }, { u: 2 }]);
    await src.createIndex({ u: 1 }, { unique: true });
    await db.collection('ren_taken').insertOne({});
    const err = await src.rename('ren_taken').catch((e: unknown) => e);
    expect((err as MongoServerError).code).toBe(48);
    const moved = await src.rename('ren_dst');
    expect(await moved.countDocuments()).toBe(2);
    expect((await moved.listIndexes().toArray()).map((i) => i.name)).toContain('u_1');
    expect(((await moved.insertOne({ u: 1 }).catch((e: unknown) => e)) as MongoServerError).code).toBe(11000);
    expect(await db.collection('ren_src').countDocuments()).toBe(0);
  });
});

describe('indexes', () => {
  it('unique and compound unique indexes are enforced; TTL and plain indexes are accepted and listed', async () => {
    const c = t.db().collection('ix1');
    await c.createIndexes([
      { key: { email: 1 }, name: 'email_1', unique: true },
      { key: { org: 1, form: 1 }, name: 'org_form', unique: true },
      { key: { at: 1 }, name: 'at_ttl', expireAfterSeconds: 3600 },
      { key: { status: 1, runAt: 1 } },
    ]);
    await c.insertOne({ email: 'a@x', org: 'o', form: 'f1' });
    await c.insertOne({ email: 'b@x', org: 'o', form: 'f2' });
    const dupEmail = await c.insertOne({ email: 'a@x', org: 'p', form: 'f' }).catch((e: unknown) => e);
    expect((dupEmail as MongoServerError).code).toBe(11000);
    expect((dupEmail as MongoServerError).keyValue).toEqual({ email: 'a@x' });
    const dupPair = await c.insertOne({ email: 'c@x', org: 'o', form: 'f1' }).catch((e: unknown) => e);
    expect((dupPair as MongoServerError).keyPattern).toEqual({ org: 1, form: 1 });
    expect((dupPair as MongoServerError).keyValue).toEqual({ org: 'o', form: 'f1' });
    const updateDup = await c.updateOne({ email: 'b@x' }, { $set: { email: 'a@x' } }).catch((e: unknown) => e);
    expect((updateDup as MongoServerError).code).toBe(11000);
    const names = (await c.listIndexes().toArray()).map((i) => i.name);
    expect(names).toEqual(['_id_', 'email_1', 'org_form', 'at_ttl', 'status_1_runAt_1']);
    const ttl = (await c.listIndexes().toArray()).find((i) => i.name === 'at_ttl');
    expect(ttl?.expireAfterSeconds).toBe(3600);
  });

  it('creating an identical index again is a no-op; a conflicting one fails', async () => {
    const c = t.db().collection('ix2');
    await c.createIndex({ a: 1 }, { unique: true });
    await c.createIndex({ a: 1 }, { unique: true });
    const conflict = await c.createIndex({ b: 1 }, { name: 'a_1' }).catch((e: unknown) => e);
    expect((conflict as MongoServerError).code).toBe(86);
  });

  it('a unique index cannot be built over duplicates; null/missing values collide', async () => {
    const c = t.db().collection('ix3');
    await c.insertMany([{ k: 1 }, { k: 1 }]);
    const err = await c.createIndex({ k: 1 }, { unique: true }).catch((e: unknown) => e);
    expect((err as MongoServerError).code).toBe(11000);
    const d = t.db().collection('ix4');
    await d.createIndex({ k: 1 }, { unique: true });
    await d.insertOne({ other: 1 });
    expect(((await d.insertOne({ other: 2 }).catch((e: unknown) => e)) as MongoServerError).code).toBe(11000);
    const s = t.db().collection('ix5');
    await s.createIndex({ k: 1 }, { unique: true, sparse: true });
    await s.insertMany([{ other: 1 }, { other: 2 }]);
    expect(await s.countDocuments()).toBe(2);
  });

  it('dropIndexes by name and "*"; listIndexes on a missing collection fails with 26', async () => {
    const c = t.db().collection('ix6');
    await c.createIndex({ a: 1 });
    await c.createIndex({ b: 1 });
    await c.dropIndex('a_1');
    expect((await c.listIndexes().toArray()).map((i) => i.name)).toEqual(['_id_', 'b_1']);
    expect(((await c.dropIndex('nope').catch((e: unknown) => e)) as MongoServerError).code).toBe(27);
    await c.dropIndexes();
    expect((await c.listIndexes().toArray()).map((i) => i.name)).toEqual(['_id_']);
    const err = await t.db().collection('ix_missing').listIndexes().toArray().catch((e: unknown) => e);
    expect((err as MongoServerError).code).toBe(26);
  });
});
