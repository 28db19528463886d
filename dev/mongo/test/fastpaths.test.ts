/**
 * The emulator's shortcuts for the job queue's filters, projections and updates must give exactly
 * what the general (mingo-based) path gives, or step aside. Each case is run through both.
 */
import { describe, expect, it } from 'vitest';
import { Long, ObjectId, type Document } from 'mongodb';
import { Query } from 'mingo/query';
import { Context } from 'mingo/core';
import * as queryOperators from 'mingo/operators/query';
import * as projectionOperators from 'mingo/operators/projection';
import { update as mingoUpdate } from 'mingo/updater';
import { fastFilter, inclusionProjection, simpleFieldUpdate } from '../fastpaths.js';
import { compileFilter, projectAll } from '../engine.js';
import { sortDocuments } from '../compare.js';

const context = Context.init({ query: queryOperators, projection: projectionOperators } as never);
const general = (filter: Document, doc: Document) => new Query(filter, { useStrictMode: true, context }).test(doc);

const now = new Date(10_000);
const id = new ObjectId();
const docs: Document[] = [
  { _id: id, status: 'queued', runAt: new Date(5_000), attempts: 0, lease: null },
  { _id: new ObjectId(), status: 'queued', runAt: new Date(20_000), attempts: 1 },
  { _id: new ObjectId(), status: 'running', runAt: new Date(1), attempts: 2, lease: { token: 't1', owner: 'o', expiresAt: new Date(9_000) } },
  { _id: new ObjectId(), status: 'running', attempts: 5, lease: { token: 't2', owner: 'o', expiresAt: new Date(11_000) }, completedSteps: 1 },
  { _id: new ObjectId(), status: ['queued', 'x'], runAt: [new Date(1), 'soon'], attempts: 0, lease: [{ expiresAt: new Date(1) }] },
  { _id: new ObjectId(), status: 'queued', runAt: '1970-01-01', attempts: '0', completedSteps: null },
  { _id: new ObjectId(), status: 'done', runAt: null, attempts: NaN, lease: 'gone' },
  { _id: new ObjectId(), status: 'queued', runAt: new Date(1), attempts: new Long(3), completedSteps: [null] },
  { _id: new ObjectId(), lease: { expiresAt: [[new Date(1)]] }, status: 'running', attempts: 1 },
];

const filters: Document[] = [
  { status: 'queued', runAt: { $lte: now } },
  {
    $or: [
      { status: 'queued', runAt: { $lte: now } },
      { status: 'running', 'lease.expiresAt': { $lt: now }, attempts: { $lt: 5 } },
    ],
  },
  { _id: id, status: 'queued', runAt: { $lte: now }, attempts: 0, completedSteps: null },
  { status: { $in: ['queued', 'running'] }, attempts: { $gte: 1, $lt: 3 } },
  { _id: { $nin: [id] }, status: { $eq: 'queued' } },
  { 'lease.token': { $in: ['t1', 't2'] }, 'lease.owner': 'o' },
  { $and: [{ attempts: { $gt: 0 } }, { status: 'running' }] },
  { completedSteps: null },
  { attempts: { $lte: 2 } },
];

describe('fast filter', () => {
  it('covers the queue filter shapes', () => {
    for (const f of filters) expect(fastFilter(f), JSON.stringify(f)).toBeDefined();
  });

  it('steps aside for other operators and empty branches', () => {
    expect(fastFilter({ a: { $exists: true } })).toBeUndefined();
    expect(fastFilter({ a: { $regex: 'x' } })).toBeUndefined();
    expect(fastFilter({ $or: [] })).toBeUndefined();
    expect(fastFilter({ 'a.0': 1 })).toBeUndefined();
    expect(fastFilter({ a: { $lt: 'b' } })).toBeUndefined();
    expect(fastFilter({ 'a.b': null })).toBeUndefined();
  });

  it('matches exactly the documents the general matcher matches', () => {
    for (const f of filters) {
      const compiled = compileFilter(f);
      for (const d of docs) expect(compiled.test(d), `${JSON.stringify(f)} on ${JSON.stringify(d)}`).toBe(general(f, d));
    }
  });

  it('answers undefined (not a guess) where BSON ordering needs the general path', () => {
    const f = fastFilter({ attempts: { $lt: 5 } })!;
    expect(f({ attempts: NaN })).toBeUndefined();
    expect(f({ attempts: new Long(3) })).toBeUndefined();
    expect(f({ attempts: [[1]] })).toBeUndefined();
    expect(f({ attempts: 4 })).toBe(true);
    expect(f({ attempts: '4' })).toBe(false);
  });
});

describe('inclusion projection', () => {
  const projections: Document[] = [
    { _id: 1, status: 1, 'lease.token': 1, runAt: 1 },
    { _id: 0, lastWriteId: 1 },
    { 'lease.token': 1, 'lease.owner': 1, missing: 1 },
  ];

  it('gives the same documents as the general path, in the document field order', () => {
    for (const p of projections) {
      const fast = inclusionProjection(p)!;
      expect(fast).toBeDefined();
      for (const d of docs) {
        const got = fast(d);
        const mingo = new Query({}, { useStrictMode: true, context }).find([d], p).all()[0];
        expect(projectAll([d], {}, p)[0]).toEqual(mingo);
        // Only a projected path that crosses an array is left to the general path.
        if (got === undefined) {
          expect(Array.isArray(d.lease) && Object.keys(p).some((k) => k.startsWith('lease.'))).toBe(true);
          continue;
        }
        expect(got, `${JSON.stringify(p)} on ${JSON.stringify(d)}`).toEqual(mingo);
        expect(Object.keys(got)).toEqual(Object.keys(d).filter((k) => k in got));
      }
    }
  });

  it('steps aside for exclusions, operators and collisions, and for arrays on a dotted path', () => {
    expect(inclusionProjection({ _id: 0 })).toBeUndefined();
    expect(inclusionProjection({ a: 0 })).toBeUndefined();
    expect(inclusionProjection({ a: { $slice: 1 } })).toBeUndefined();
    expect(inclusionProjection({ a: 1, 'a.b': 1 })).toBeUndefined();
    expect(inclusionProjection({ 'a.$': 1 })).toBeUndefined();
    const crossing = { _id: 1, lease: [{ expiresAt: 1, owner: 'o' }] };
    expect(inclusionProjection({ 'lease.expiresAt': 1 })!(crossing)).toBeUndefined();
    expect(projectAll([crossing], {}, { 'lease.expiresAt': 1 })).toEqual([{ _id: 1, lease: [{ expiresAt: 1 }] }]);
  });
});

describe('$set / $unset / $inc on top-level fields', () => {
  const base = { _id: 1, status: 'queued', attempts: 2, lease: null, runAt: new Date(1), steps: [{ type: 'webhook' }] };
  const updates: Document[] = [
    { $set: { status: 'running', lease: { owner: 'o', token: 't', expiresAt: now }, startedAt: now, updatedAt: now }, $inc: { attempts: 1 } },
    { $set: { status: 'succeeded', finishedAt: now, lease: null }, $unset: { runAt: '' } },
    { $inc: { completedSteps: 1 }, $set: { lastWriteId: 'w/1' } },
    { $set: { status: 'queued' }, $inc: { attempts: -1 } },
  ];

  it('builds the same document as the general updater, field order included', () => {
    for (const u of updates) {
      const fast = simpleFieldUpdate(base, u)!;
      expect(fast, JSON.stringify(u)).toBeDefined();
      const copy = structuredClone(base);
      mingoUpdate(copy, u, undefined, undefined, { cloneMode: 'deep' });
      expect(fast).toEqual(copy);
      expect(Object.keys(fast)).toEqual(Object.keys(copy));
    }
    expect(base.attempts).toBe(2); // the stored document is never changed
  });

  it('steps aside for dotted paths, repeated fields, other operators and non-numeric $inc', () => {
    expect(simpleFieldUpdate(base, { $set: { 'lease.token': 'x' } })).toBeUndefined();
    expect(simpleFieldUpdate(base, { $set: { attempts: 1 }, $inc: { attempts: 1 } })).toBeUndefined();
    expect(simpleFieldUpdate(base, { $push: { steps: 1 } })).toBeUndefined();
    expect(simpleFieldUpdate(base, { $inc: { status: 1 } })).toBeUndefined();
    expect(simpleFieldUpdate({ ...base, attempts: new Long(2) }, { $inc: { attempts: 1 } })).toBeUndefined();
    expect(simpleFieldUpdate(base, { $set: { _id: 2 } })).toBeUndefined();
  });
});

describe('sorted first k', () => {
  it('keeps what a full stable sort keeps', () => {
    const many = Array.from({ length: 200 }, (_, i) => ({ _id: i, runAt: new Date(((i * 7919) % 50) * 1000) }));
    const full = sortDocuments(many, { runAt: 1 }).slice(0, 20);
    expect(sortDocuments(many, { runAt: 1 }, 20)).toEqual(full);
    expect(sortDocuments(many, { runAt: -1, _id: 1 }, 7)).toEqual(sortDocuments(many, { runAt: -1, _id: 1 }).slice(0, 7));
  });
});
