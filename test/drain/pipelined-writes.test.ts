/**
 * Promise 1 with batch writes in flight side by side: the drain writes a second batch while the
 * first is still unacknowledged, but no token is saved until every batch it covers is durable,
 * and no more than WRITES_IN_FLIGHT batches are outstanding at once.
 */
import { describe, expect, it } from 'vitest';
import type { Db } from 'mongodb';
import { useTestDb } from '../support/mongo.js';
import { insertSubmissions, seedWorkflow, testContext, until } from '../support/context.js';
import { expectExactlyOne } from '../support/assert.js';
import { drainStream } from '../../lib/drain/drain.js';
import { WRITES_IN_FLIGHT } from '../../lib/drain/session.js';
import { orgStream } from '../../lib/streams/refs.js';
import { CheckpointStore } from '../../lib/streams/checkpoint.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { tokenPosition } from '../../lib/streams/token.js';

const mongo = useTestDb('drain_pipelined');

/** A Db whose first `workflow_jobs` bulk write waits for `open()`; counts bulk writes started and answered. */
function gatedJobWrites(db: Db) {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const state = { started: 0, answered: 0 };
  const wrapJobs = (coll: object) =>
    new Proxy(coll, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (prop !== 'bulkWrite' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
        return async (...args: unknown[]) => {
          const n = ++state.started;
          if (n === 1) await gate;
          try {
            return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          } finally {
            state.answered++;
          }
        };
      },
    });
  const proxy = new Proxy(db, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'collection') {
        return (name: string, ...rest: unknown[]) => {
          const coll = (value as (...a: unknown[]) => object).apply(target, [name, ...rest]);
          return name === COLLECTIONS.jobs ? wrapJobs(coll) : coll;
        };
      }
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { db: proxy, state, open: release };
}

describe('batch writes in flight, token saves in order', () => {
  it('saves no token while an earlier batch is unacknowledged, keeps at most WRITES_IN_FLIGHT outstanding, and ends with one job each', async () => {
    const orgId = 'pipelined';
    await seedWorkflow(mongo.db(), { organizationId: orgId });
    const ctx = await testContext(mongo.db(), mongo.client(), { DRAIN_BATCH_SIZE: '5' });
    await drainStream(ctx, orgStream(orgId));
    const store = new CheckpointStore(mongo.db());
    const before = (await store.get(`org:${orgId}`))?.token;
    expect(before).toBeTruthy();
    const ids = await insertSubmissions(mongo.db(), 30, { orgId });

    const gated = gatedJobWrites(mongo.db());
    const run = drainStream({ ...ctx, db: gated.db }, orgStream(orgId));
    // The second batch is written and acknowledged while the first is held back.
    await until(async () => gated.state.answered >= 1, 'a later batch write acknowledged while the first is held');
    expect(gated.state.started).toBeLessThanOrEqual(WRITES_IN_FLIGHT);
    expect((await store.get(`org:${orgId}`))?.token).toEqual(before);

    gated.open();
    const summary = await run;
    expect(summary.status, JSON.stringify(summary)).not.toBe('failed');
    expect(gated.state.started).toBeGreaterThanOrEqual(6);
    const after = (await store.get(`org:${orgId}`))?.token;
    expect(tokenPosition(after)! > tokenPosition(before)!).toBe(true);
    await expectExactlyOne(mongo.db(), orgId, ids);
  });
});
