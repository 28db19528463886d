/**
 * The connection drops or the server answers a transient error in the middle of a drain: a blip
 * (the next command fails once or twice) or an outage (every matching command fails from some
 * point on, until the network comes back). Injected with failCommand, as on a real mongod.
 */
import { drainStream } from '../../../lib/drain/drain.js';
import { SAFETY_MARGIN_MS } from '../../../lib/platform/limits.js';
import { orgStream } from '../../../lib/streams/refs.js';
import { OffsetClock } from '../../../test/support/context.js';
import { insertBacklog, seedWorkflow } from '../../bench/setup.js';
import { armFailPoint, clearFailPoint, describeFault, type FailCommand, type FailMode } from '../failpoint.js';
import { drainUntilQuiet, faultContext, Tally, trialOrg } from '../support.js';
import type { Scenario } from '../types.js';

/** One trial's fault: what fails and how often (a random source picks where an outage starts). */
export type FaultPlan = (random: () => number) => [FailCommand, FailMode];

/** Faults and how often they fire; writes need two in a row to get past the driver's one retry. */
const FAULTS: [FailCommand, FailMode][] = [
  [{ failCommands: ['getMore'], closeConnection: true }, { times: 1 }],
  // A resumable getMore error as mongod labels it (failCommand attaches only the labels it names)...
  [{ failCommands: ['getMore'], errorCode: 10107, errorLabels: ['ResumableChangeStreamError'] }, { times: 1 }],
  // ...and one without the label, which the driver does not resume: the drain's reconnect path runs.
  [{ failCommands: ['getMore'], errorCode: 10107 }, { times: 1 }],
  [{ failCommands: ['update'], closeConnection: true }, { times: 2 }],
  [{ failCommands: ['update'], errorCode: 91 }, { times: 2 }],
  [{ failCommands: ['insert'], errorCode: 91 }, { times: 1 }],
  [{ failCommands: ['findAndModify'], closeConnection: true }, { times: 2 }],
  [{ failCommands: ['aggregate'], closeConnection: true }, { times: 1 }],
];
/** Outages start after a few matching commands went through, at a random point. */
const OUTAGES: FailCommand[] = [
  { failCommands: ['update'], closeConnection: true },
  { failCommands: ['getMore'], closeConnection: true },
];

/** Blips and outages interleaved, so that a few trials already cover both kinds. */
export const DEFAULT_PLANS: FaultPlan[] = FAULTS.flatMap(([data, mode], i): FaultPlan[] => [
  () => [data, mode],
  (random) => [OUTAGES[i % OUTAGES.length]!, { skip: 1 + Math.floor(random() * 3) }],
]);

/** An outage of getMore alone: the stream opens, every getMore then loses its connection. */
export const GETMORE_OUTAGE: FaultPlan = (random) => [{ failCommands: ['getMore'], closeConnection: true }, { skip: 1 + Math.floor(random() * 3) }];

export const networkScenario: Scenario = networkScenarioWith(DEFAULT_PLANS);

/** The scenario with trial t running `plans[t % plans.length]`. */
export function networkScenarioWith(plans: readonly FaultPlan[]): Scenario {
  return {
    name: 'dropped connections',
    promises: '1, 2, 4',
    description:
      'failCommand closes the connection or answers a transient error (10107 NotWritablePrimary with and without ResumableChangeStreamError, 91 ShutdownInProgress) on getMore, the job bulk write / token save (update), the run record (insert), the lease (findAndModify) or the stream open (aggregate) — once, or from a random point until cleared',
    full: { trials: 24, events: 150 },
    quick: { trials: 2, events: 60 },
    async run(env, opts) {
      const tally = new Tally(this.name, this.promises);
      const clock = new OffsetClock();
      const ctx = await faultContext(env, {}, clock);
      const seen: string[] = [];
      const outcomes = new Map<string, number>();
      for (let t = 0; t < opts.trials; t++) {
        tally.trial();
        const orgId = trialOrg('net', t);
        await seedWorkflow(env.db, orgId);
        await drainStream(ctx, orgStream(orgId));
        const { ids } = await insertBacklog(env.db, orgId, opts.events, 25);
        const [data, mode] = plans[t % plans.length]!(env.random);
        seen.push(describeFault(data, mode));
        await armFailPoint(env.client, data, mode);
        const started = performance.now();
        // A run may record the failure or, when the lease itself cannot be written, throw (the route
        // answers 5xx and QStash redelivers); either way it must end inside its window (promise 4).
        // A run still going at window + margin is reported, and the fault is cleared so it can end.
        const budgetMs = ctx.config.DRAIN_WINDOW_MS + SAFETY_MARGIN_MS;
        const running = drainStream(ctx, orgStream(orgId)).then(
          (r) => r.status,
          (e: { code?: unknown; name?: string }) => `threw ${String(e?.code ?? e?.name)}`,
        );
        let timer: NodeJS.Timeout | undefined;
        const overran = await Promise.race([running.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), budgetMs)))]);
        clearTimeout(timer);
        await clearFailPoint(env.client);
        const outcome = await running;
        const took = Math.round(performance.now() - started);
        outcomes.set(overran ? 'overran its window' : outcome, (outcomes.get(overran ? 'overran its window' : outcome) ?? 0) + 1);
        tally.check(!overran, `trial ${t}: under "${describeFault(data, mode)}" the run did not end within window + margin (${budgetMs} ms); it ended ${took} ms after it started, once the fault was cleared`);
        // A run that could not release its lease (the network was down) keeps it until it expires;
        // the next cron tick after that takes over.
        clock.advance(10 * 60_000);
        await drainUntilQuiet(ctx, orgStream(orgId));
        await tally.jobs(env.db, orgId, ids);
      }
      tally.note(`faults: ${[...new Set(seen)].join('; ')}`);
      tally.note(`runs under fault: ${[...outcomes].map(([k, v]) => `${k} ×${v}`).join(', ')}`);
      return tally.done();
    },
  };
}
