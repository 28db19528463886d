/**
 * A drain invocation dies at a random database operation (between reading, dispatching, saving the
 * token, releasing the lease, recording the run); the lease expires and later runs take over.
 */
import type { Db } from 'mongodb';
import { drainStream } from '../../../lib/drain/drain.js';
import { orgStream } from '../../../lib/streams/refs.js';
import { crashingDb } from '../../../test/support/crash.js';
import { OffsetClock } from '../../../test/support/context.js';
import { insertBacklog, seedWorkflow } from '../../bench/setup.js';
import { drainUntilQuiet, faultContext, Tally, trialOrg } from '../support.js';
import type { FaultEnv, Scenario, ScenarioOptions } from '../types.js';

export const crashScenario: Scenario = {
  name: 'crash between dispatch and save',
  promises: '1, 2, 3',
  description:
    'a drain dies at a random database operation of its run (crashingDb: that operation and every later one fail, as if the process died there); after its lease expires the next runs continue from the saved token',
  full: { trials: 40, events: 120 },
  quick: { trials: 3, events: 60 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const clock = new OffsetClock();
    const ctx = await faultContext(env, {}, clock);
    const sequence = await operationSequence(env, opts, clock);
    tally.note(`a clean run of ${opts.events} events makes ${sequence.length} database calls; crash points drawn uniformly from 1..${sequence.length}`);
    const hit = new Map<string, number>();
    for (let t = 0; t < opts.trials; t++) {
      tally.trial();
      const orgId = trialOrg('crash', t);
      await seedWorkflow(env.db, orgId);
      await drainStream(ctx, orgStream(orgId));
      const { ids } = await insertBacklog(env.db, orgId, opts.events, 25);
      const crashAt = 1 + Math.floor(env.random() * sequence.length);
      const crashing = crashingDb(env.db, crashAt);
      await drainStream({ ...ctx, db: crashing.db }, orgStream(orgId)).catch(() => undefined);
      const op = sequence[crashAt - 1] ?? 'later';
      hit.set(op, (hit.get(op) ?? 0) + 1);
      // The dead invocation never releases its lease: the next runs get it once it has expired.
      clock.advance(10 * 60_000);
      await drainUntilQuiet(ctx, orgStream(orgId));
      await tally.jobs(env.db, orgId, ids);
    }
    tally.note(`crashed at: ${[...hit].map(([k, v]) => `${k} ×${v}`).join(', ')}`);
    return tally.done();
  },
};

/** The collection methods a clean run calls, in order (names only), on a probe organization. */
async function operationSequence(env: FaultEnv, opts: ScenarioOptions, clock: OffsetClock): Promise<string[]> {
  const ctx = await faultContext(env, {}, clock);
  const orgId = trialOrg('crashprobe', 0);
  await seedWorkflow(env.db, orgId);
  await drainStream(ctx, orgStream(orgId));
  await insertBacklog(env.db, orgId, opts.events, 25);
  const names: string[] = [];
  await drainStream({ ...ctx, db: tracingDb(env.db, names) }, orgStream(orgId));
  return names;
}

/** Records the name of every collection method called, the same calls crashingDb counts. */
export function tracingDb(db: Db, names: string[]): Db {
  const wrap = (coll: object) =>
    new Proxy(coll, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function' || typeof prop !== 'string' || prop.startsWith('_')) return value;
        return (...args: unknown[]) => {
          // Per-organization collections are named by kind, so that trials of different orgs compare.
          const coll = String((target as { collectionName?: string }).collectionName).replace(/^submissions_.*/, 'submissions_{org}');
          names.push(`${coll}.${prop}`);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  return new Proxy(db, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'collection') return (...args: unknown[]) => wrap((value as (...a: unknown[]) => object).apply(target, args));
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
