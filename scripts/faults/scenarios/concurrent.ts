/**
 * Several invocations drain one stream at once (overlapping cron ticks, QStash redeliveries), and
 * a stale invocation whose lease was taken over tries to save its token.
 */
import { CheckpointStore } from '../../../lib/streams/checkpoint.js';
import { drainStream } from '../../../lib/drain/drain.js';
import { orgStream } from '../../../lib/streams/refs.js';
import { tokenPosition } from '../../../lib/streams/token.js';
import { OffsetClock } from '../../../test/support/context.js';
import { insertBacklog, seedWorkflow } from '../../bench/setup.js';
import { drainUntilQuiet, faultContext, Tally, trialOrg } from '../support.js';
import type { Scenario } from '../types.js';

const RACERS = 5;

export const concurrentScenario: Scenario = {
  name: 'concurrent drains',
  promises: '1, 2, 3',
  description: `${RACERS} drains of one stream start at once: one takes the lease, the others must skip; then a stale lease holder (its lease expired and was taken over) tries to save a token and must be refused`,
  full: { trials: 10, events: 200 },
  quick: { trials: 1, events: 80 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const clock = new OffsetClock();
    const ctx = await faultContext(env, {}, clock);
    const store = new CheckpointStore(env.db);
    for (let t = 0; t < opts.trials; t++) {
      tally.trial();
      const orgId = trialOrg('race', t);
      const stream = orgStream(orgId);
      await seedWorkflow(env.db, orgId);
      await drainStream(ctx, stream);
      const before = tokenPosition((await store.get(stream.id))?.token);
      const { ids } = await insertBacklog(env.db, orgId, opts.events, 50);
      const runs = await Promise.all(Array.from({ length: RACERS }, (_, i) => drainStream(ctx, stream, { owner: `racer-${i}`, startedBy: i % 2 ? 'qstash' : 'cron' })));
      const completed = runs.filter((r) => r.status === 'completed').length;
      const skipped = runs.filter((r) => r.status === 'skipped' && r.stoppedBy === 'leased').length;
      tally.check(completed === 1, `trial ${t}: ${completed} of ${RACERS} concurrent drains completed (expected 1)`);
      tally.rejections(RACERS - 1, skipped);

      // A frozen invocation: it holds a lease, stalls past its expiry, another run takes over.
      const stale = await store.acquire(stream, 'frozen', new Date(clock.now()), new Date(clock.now() + 1_000));
      clock.advance(60_000);
      const more = await insertBacklog(env.db, orgId, Math.ceil(opts.events / 4), 50);
      await drainUntilQuiet(ctx, stream);
      const refused = stale
        ? await store.saveToken(stale, { _data: `82${'7FFFFFFF'}00000001` + '04' }, new Date(clock.now())).then(
            () => false,
            (e: { code?: string }) => e?.code === 'lease_lost',
          )
        : false;
      tally.check(stale !== null, `trial ${t}: the stale lease could not be taken at all`);
      tally.rejections(1, refused ? 1 : 0);
      const after = tokenPosition((await store.get(stream.id))?.token);
      tally.check(!before || !after || after >= before, `trial ${t}: token moved backwards (${before} → ${after})`);
      await tally.jobs(env.db, orgId, [...ids, ...more.ids]);
    }
    tally.note(`rejections: ${RACERS - 1} skipped drains + 1 fenced stale save per trial`);
    return tally.done();
  },
};
