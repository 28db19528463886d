/**
 * The stream cannot resume: history lost (286 ChangeStreamHistoryLost, e.g. the oplog rolled over)
 * or the token is unusable (260 InvalidResumeToken). Injected on the `aggregate` that opens the
 * stream. The drain must reconcile by scan, dispatch what it missed once, and record the gap.
 */
import { CheckpointStore } from '../../../lib/streams/checkpoint.js';
import { drainStream } from '../../../lib/drain/drain.js';
import { orgStream } from '../../../lib/streams/refs.js';
import { insertBacklog, seedWorkflow } from '../../bench/setup.js';
import { armFailPoint, clearFailPoint, type FailCommand } from '../failpoint.js';
import { drainUntilQuiet, faultContext, Tally, trialOrg } from '../support.js';
import type { Scenario } from '../types.js';

const CASES: { kind: string; fault: FailCommand }[] = [
  { kind: 'history_lost', fault: { failCommands: ['aggregate'], errorCode: 286, errorLabels: ['NonResumableChangeStreamError'] } },
  { kind: 'invalid_token', fault: { failCommands: ['aggregate'], errorCode: 260 } },
];

export const historyScenario: Scenario = {
  name: 'lost history',
  promises: '1, 5',
  description:
    'failCommand answers 286 ChangeStreamHistoryLost or 260 InvalidResumeToken to the aggregate that opens the stream; the drain must scan the gap, dispatch every missed submission once, and record the gap with its window and count',
  full: { trials: 8, events: 200 },
  quick: { trials: 2, events: 40 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const ctx = await faultContext(env);
    const store = new CheckpointStore(env.db);
    let gapsRecorded = 0;
    for (let t = 0; t < opts.trials; t++) {
      tally.trial();
      const { kind, fault } = CASES[t % CASES.length]!;
      const orgId = trialOrg('gap', t);
      const stream = orgStream(orgId);
      await seedWorkflow(env.db, orgId);
      await drainStream(ctx, stream);
      const { ids } = await insertBacklog(env.db, orgId, opts.events, 50);
      await armFailPoint(env.client, fault, { times: 1 });
      try {
        const run = await drainStream(ctx, stream);
        tally.check(run.recoveries.some((r) => r.kind === kind), `trial ${t}: the run did not recover as ${kind} (${JSON.stringify(run.recoveries)})`);
      } finally {
        await clearFailPoint(env.client);
      }
      await drainUntilQuiet(ctx, stream);
      // Later inserts flow through the new stream, not another scan.
      const later = await insertBacklog(env.db, orgId, Math.ceil(opts.events / 4), 50);
      const next = await drainStream(ctx, stream);
      tally.check(next.recoveries.length === 0, `trial ${t}: the run after recovery recovered again`);
      const cp = await store.get(stream.id);
      const gap = cp?.gaps.find((g) => g.reason === kind);
      const recorded = cp?.gapCount === 1 && gap !== undefined && gap.count >= opts.events && gap.from.getTime() < gap.to.getTime();
      tally.check(recorded, `trial ${t}: gap not recorded as expected (${JSON.stringify(cp?.gaps)})`);
      if (recorded) gapsRecorded++;
      await tally.jobs(env.db, orgId, [...ids, ...later.ids]);
    }
    tally.note(`gaps recorded with window and count: ${gapsRecorded}/${opts.trials}`);
    return tally.done();
  },
};
