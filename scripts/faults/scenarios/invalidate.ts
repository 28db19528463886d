/**
 * The submissions collection is dropped and recreated (an invalidate event), before a drain or while
 * a drain window is open. Submissions from before the drop and after the recreation all get jobs.
 */
import { drainStream } from '../../../lib/drain/drain.js';
import { submissionsCollection } from '../../../lib/data/mongo.js';
import { orgStream } from '../../../lib/streams/refs.js';
import { insertBacklog, seedWorkflow } from '../../bench/setup.js';
import { drainUntilQuiet, faultContext, Tally, trialOrg } from '../support.js';
import type { Scenario } from '../types.js';

export const invalidateScenario: Scenario = {
  name: 'invalidate (drop + recreate)',
  promises: '1, 3',
  description:
    'the submissions collection is dropped and recreated between runs or while a drain window is open; the drain keeps the invalidate token, reopens with startAfter and dispatches what came before the drop and after the recreation',
  full: { trials: 8, events: 120 },
  quick: { trials: 2, events: 40 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const ctx = await faultContext(env);
    // The run that is open while the collection is dropped waits a little longer before it calls the stream idle.
    const patient = { ...ctx, config: { ...ctx.config, DRAIN_IDLE_MS: 1_500 } };
    let invalidates = 0;
    for (let t = 0; t < opts.trials; t++) {
      tally.trial();
      const orgId = trialOrg('inval', t);
      const stream = orgStream(orgId);
      await seedWorkflow(env.db, orgId);
      await drainStream(ctx, stream);
      const half = Math.ceil(opts.events / 2);
      const before = await insertBacklog(env.db, orgId, half, 25);
      let after: { ids: string[] };
      if (t % 2 === 0) {
        await env.db.collection(submissionsCollection(orgId)).drop();
        after = await insertBacklog(env.db, orgId, opts.events - half, 25);
        const run = await drainStream(ctx, stream);
        if (run.recoveries.some((r) => r.kind === 'invalidate')) invalidates++;
      } else {
        // Drop while a window is open: the drain is reading when the invalidate arrives.
        const running = drainStream(patient, stream);
        await env.db.collection(submissionsCollection(orgId)).drop();
        after = await insertBacklog(env.db, orgId, opts.events - half, 25);
        const run = await running;
        if (run.recoveries.some((r) => r.kind === 'invalidate')) invalidates++;
      }
      await drainUntilQuiet(ctx, stream);
      await tally.jobs(env.db, orgId, [...before.ids, ...after.ids]);
    }
    tally.note(`runs that saw the invalidate and reopened with startAfter: ${invalidates}/${opts.trials}; drops alternate between runs and inside an open window`);
    return tally.done();
  },
};
