/**
 * Conformance: collection options that change what writes and change streams do — collMod
 * validators (DocumentValidationFailure, 121), changeStreamPreAndPostImages (fullDocument
 * whenAvailable/required, fullDocumentBeforeChange), showExpandedEvents (DDL events), and views.
 */
import { describe, expect, it } from 'vitest';
import { MongoServerError, type Document } from 'mongodb';
import { useTestDb } from '../../../test/support/mongo.js';
import { take } from './support.js';

const t = useTestDb('emu_collopts');

/** Documents with numeric `_id`s. */
type Doc = Document & { _id: number };

describe('collMod validator', () => {
  it('is enforced on later inserts and updates with DocumentValidationFailure and errInfo', async () => {
    const c = t.db().collection<Doc>('v1');
    await c.insertOne({ _id: 1, x: 'a' });
    await t.db().command({ collMod: 'v1', validator: { x: { $type: 'string' } } });
    const ins = await c.insertOne({ _id: 2, x: 5 }).catch((e: unknown) => e);
    expect((ins as MongoServerError).code).toBe(121);
    const upd = await c.findOneAndUpdate({ _id: 1 }, { $set: { x: 1 } }).catch((e: unknown) => e);
    expect((upd as MongoServerError).code).toBe(121);
    expect((upd as MongoServerError).errInfo).toMatchObject({ failingDocumentId: 1 });
    expect(await c.find().toArray()).toEqual([{ _id: 1, x: 'a' }]);
  });

  it("validationAction 'warn' lets the write through", async () => {
    const c = t.db().collection<Doc>('v2');
    await c.insertOne({ _id: 1 });
    await t.db().command({ collMod: 'v2', validator: { x: { $exists: true } }, validationAction: 'warn' });
    await c.insertOne({ _id: 2 });
    expect(await c.countDocuments()).toBe(2);
  });
});

describe('changeStreamPreAndPostImages', () => {
  it('with images enabled, an update event carries the pre-image and the post-image', async () => {
    const c = t.db().collection<Doc>('img1');
    await c.insertOne({ _id: 1, n: 1 });
    await t.db().command({ collMod: 'img1', changeStreamPreAndPostImages: { enabled: true } });
    const stream = c.watch([], { fullDocument: 'required', fullDocumentBeforeChange: 'required', maxAwaitTimeMS: 100 });
    try {
      await stream.tryNext();
      await c.updateOne({ _id: 1 }, { $set: { n: 2 } });
      await c.deleteOne({ _id: 1 });
      const [upd, del] = await take(stream, 2);
      expect(upd).toMatchObject({ operationType: 'update', fullDocumentBeforeChange: { _id: 1, n: 1 }, fullDocument: { _id: 1, n: 2 } });
      expect(del).toMatchObject({ operationType: 'delete', fullDocumentBeforeChange: { _id: 1, n: 2 } });
    } finally {
      await stream.close();
    }
  });

  it("without images, 'whenAvailable' reports null and 'required' fails with NoMatchingDocument (47)", async () => {
    const c = t.db().collection<Doc>('img2');
    await c.insertOne({ _id: 1, n: 1 });
    const lenient = c.watch([], { fullDocument: 'whenAvailable', fullDocumentBeforeChange: 'whenAvailable', maxAwaitTimeMS: 100 });
    const strict = c.watch([], { fullDocumentBeforeChange: 'required', maxAwaitTimeMS: 100 });
    try {
      await lenient.tryNext();
      await strict.tryNext();
      await c.updateOne({ _id: 1 }, { $set: { n: 2 } });
      const [ev] = await take(lenient, 1);
      expect(ev).toMatchObject({ operationType: 'update', fullDocument: null, fullDocumentBeforeChange: null });
      const err = await strict.next().catch((e: unknown) => e);
      expect((err as MongoServerError).code).toBe(47);
    } finally {
      await lenient.close();
      await strict.close();
    }
  });
});

describe('showExpandedEvents', () => {
  it('reports createIndexes, dropIndexes and modify with collectionUUID and operationDescription; plain streams do not', async () => {
    const c = t.db().collection<Doc>('ddl1');
    await c.insertOne({ _id: 1 });
    const expanded = c.watch([], { showExpandedEvents: true, maxAwaitTimeMS: 100 });
    const plain = c.watch([], { maxAwaitTimeMS: 100 });
    try {
      await expanded.tryNext();
      await plain.tryNext();
      await c.createIndex({ x: 1 }, { name: 'x_1' });
      await c.dropIndex('x_1');
      await t.db().command({ collMod: 'ddl1', validator: {} });
      await c.insertOne({ _id: 2 });
      const evs = await take(expanded, 4);
      expect(evs.map((e) => e.operationType)).toEqual(['createIndexes', 'dropIndexes', 'modify', 'insert']);
      expect(evs[0]).toMatchObject({ operationDescription: { indexes: [{ key: { x: 1 }, name: 'x_1' }] } });
      expect(evs.every((e) => e.collectionUUID !== undefined)).toBe(true);
      const [only] = await take(plain, 1);
      expect(only).toMatchObject({ operationType: 'insert', documentKey: { _id: 2 } });
      expect(only).not.toHaveProperty('collectionUUID');
    } finally {
      await expanded.close();
      await plain.close();
    }
  });
});

describe('views', () => {
  it('a view reads its source through its pipeline, is listed as a view, and refuses writes (166)', async () => {
    const src = t.db().collection<Doc>('vsrc');
    await src.insertMany([{ _id: 1, k: 'a' }, { _id: 2, k: 'b' }]);
    await t.db().createCollection('vview', { viewOn: 'vsrc', pipeline: [{ $match: { k: 'b' } }] });
    const view = t.db().collection<Doc>('vview');
    expect(await view.find().toArray()).toEqual([{ _id: 2, k: 'b' }]);
    expect(await view.countDocuments()).toBe(1);
    const listed = await t.db().listCollections({ name: 'vview' }).toArray();
    expect(listed[0]).toMatchObject({ type: 'view', options: { viewOn: 'vsrc' } });
    const err = await view.insertOne({ _id: 3, k: 'c' }).catch((e: unknown) => e);
    expect((err as MongoServerError).code).toBe(166);
  });
});
