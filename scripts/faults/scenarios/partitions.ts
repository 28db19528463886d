/**
 * The fault kinds of the matrix applied to the `database` stream layout: P partition streams
 * (`partition:{p}/{P}`, P = 2 or 4) over a platform database of their own, submissions spread over
 * several organizations' `submissions_{orgId}` collections and the legacy shared collection, and
 * traffic flowing while the fault happens. Every scenario checks the same promises through
 * PartitionWorld: one job per submission (0 lost, 0 duplicated), the saved tokens never move back,
 * every drain ends within its window + margin, and a gap is recorded when (and only when) history
 * was lost. The checks are on outcomes, not on how the drain gets there.
 *
 *   npm run faults -- --only partitions            # every partition row
 *   npm run faults -- --only "partitions: crash"   # one of them
 */
import { ObjectId } from 'mongodb';
import * as drainRoute from '../../../api/drain.js';
import { provideContext } from '../../../lib/platform/context.js';
import { dispatchExplicit } from '../../../lib/dispatch/explicit.js';
import { COLLECTIONS, submissionsCollection } from '../../../lib/data/mongo.js';
import { SAFETY_MARGIN_MS } from '../../../lib/platform/limits.js';
import { CheckpointStore } from '../../../lib/streams/checkpoint.js';
import { partitionOf } from '../../../lib/streams/partition.js';
import { listStreams } from '../../../lib/streams/refs.js';
import { crashingDb } from '../../../test/support/crash.js';
import type { CheckpointDoc } from '../../../lib/data/documents.js';
import { seedWorkflow } from '../../bench/setup.js';
import { armFailPoint, clearFailPoint, describeFault, type FailCommand } from '../failpoint.js';
import { PartitionWorld, SHARED, type Outcome } from '../partition-world.js';
import { Tally } from '../support.js';
import type { Scenario } from '../types.js';
import { tracingDb } from './crash.js';
import { DEFAULT_PLANS } from './network.js';
import { CRON, request, routeContext } from './routes.js';

/** Organizations per trial (each with its own collection; the shared collection comes on top). */
const ORGS = 4;
/** A dead invocation's lease expires after window + margin; moving the clock this far lets the next runs in. */
const LEASE_EXPIRED_MS = 10 * 60_000;

/** Wait until `cond` holds (polling; the traffic writer advances on its own). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}

function outcomeOf(o: Outcome): string {
  if (o.threw) return `threw ${o.threw.name}`;
  return o.summary.status === 'completed' ? 'completed' : `${o.summary.status} (${o.summary.stoppedBy})`;
}

function tallyOutcome(outcomes: Map<string, number>, o: Outcome): void {
  const k = outcomeOf(o);
  outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
}

function describeCounts(m: Map<string, number>): string {
  return [...m].map(([k, v]) => `${k} ×${v}`).join(', ');
}

/** No history was lost: no gap may have been recorded (a recovery scan where none was needed). */
async function expectNoGap(world: PartitionWorld, tally: Tally, trial: number): Promise<void> {
  const gaps = await world.gaps();
  tally.check(gaps.length === 0, `trial ${trial}: gaps recorded although no history was lost: ${JSON.stringify(gaps.map((g) => ({ stream: g.streamId, reason: g.reason, count: g.count })))}`);
}

export const partitionCrashScenario: Scenario = {
  name: 'partitions: crash at every database call',
  promises: '1, 2, 3, 4',
  description:
    'P = 2; a partition drain dies at one database call of its run (crashingDb: that call and every later one fail) while submissions keep arriving in several organizations’ collections and the shared one; after its lease expires the next runs continue. With enough trials every call of a clean run is hit once',
  full: { trials: 32, events: 80 },
  quick: { trials: 3, events: 60 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const world = await PartitionWorld.open(env, tally, 'pcrash', { partitions: 2 });
    try {
      await world.drainUntilQuiet();
      // The calls of a clean run over a backlog like a trial's (new workflows, submissions everywhere).
      const probeOrgs = await world.organizations('pprobe', ORGS);
      await world.traffic(probeOrgs, opts.events, { pauseMs: 0 }).done;
      const sequence: string[] = [];
      await world.drain(world.streams[0]!, { ctx: { ...world.ctx, db: tracingDb(world.db, sequence) }, what: 'the traced drain' });
      await world.drainUntilQuiet();
      const n = sequence.length;
      tally.note(`a clean partition run over a ${opts.events}-submission backlog makes ${n} database calls; ${opts.trials >= n ? `trials 1..${n} crash at each of them in turn` : `crash points drawn from 1..${n}`}`);
      const hit = new Map<string, number>();
      for (let t = 0; t < opts.trials; t++) {
        tally.trial();
        const orgs = await world.organizations(`pcrash${t}_`, ORGS);
        const stream = world.streams[t % world.streams.length]!;
        const crashAt = opts.trials >= n ? (t % n) + 1 : 1 + Math.floor(env.random() * n);
        const traffic = world.traffic(orgs, opts.events);
        const crashing = crashingDb(world.db, crashAt);
        await world.drain(stream, { ctx: { ...world.ctx, db: crashing.db }, what: `the drain crashing at call ${crashAt}` });
        const op = crashing.crashed() ? (sequence[crashAt - 1] ?? 'a later call') : 'no call (the run made fewer)';
        hit.set(op, (hit.get(op) ?? 0) + 1);
        await traffic.done;
        // The dead invocation never released its lease: the next runs get it once it has expired.
        world.clock.advance(LEASE_EXPIRED_MS);
        await world.drainUntilQuiet();
        await world.count(traffic.ids);
        await expectNoGap(world, tally, t);
      }
      tally.note(`crashed at: ${describeCounts(hit)}`);
      return tally.done();
    } finally {
      await world.close();
    }
  },
};

export const partitionNetworkScenario: Scenario = {
  name: 'partitions: dropped connections',
  promises: '1, 2, 3, 4',
  description:
    'P = 2; while submissions arrive, failCommand closes the connection or answers 10107 / 91 on getMore, the job bulk write and token save (update), the run record (insert), the lease (findAndModify) or the stream open (aggregate) of a partition drain, once or from a random point until cleared',
  full: { trials: 16, events: 120 },
  quick: { trials: 2, events: 60 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const world = await PartitionWorld.open(env, tally, 'pnet', { partitions: 2 });
    const seen: string[] = [];
    const outcomes = new Map<string, number>();
    try {
      await world.drainUntilQuiet();
      for (let t = 0; t < opts.trials; t++) {
        tally.trial();
        const orgs = await world.organizations(`pnet${t}_`, ORGS);
        await world.drainUntilQuiet();
        const stream = world.streams[t % world.streams.length]!;
        const traffic = world.traffic(orgs, opts.events);
        const [data, mode] = DEFAULT_PLANS[t % DEFAULT_PLANS.length]!(env.random);
        seen.push(describeFault(data, mode));
        await until(() => traffic.ids.length > 0);
        await armFailPoint(env.client, data, mode);
        try {
          // A run still going at window + margin is reported, and the fault cleared so it can end.
          tallyOutcome(outcomes, await world.drain(stream, { what: `the drain under "${describeFault(data, mode)}"`, onOverrun: () => clearFailPoint(env.client) }));
        } finally {
          await clearFailPoint(env.client);
        }
        await traffic.done;
        // A run that could not release its lease keeps it until it expires.
        world.clock.advance(LEASE_EXPIRED_MS);
        await world.drainUntilQuiet();
        await world.count(traffic.ids);
        await expectNoGap(world, tally, t);
      }
      tally.note(`faults: ${[...new Set(seen)].join('; ')}`);
      tally.note(`runs under fault: ${describeCounts(outcomes)}`);
      return tally.done();
    } finally {
      await world.close();
    }
  },
};

export const partitionDuplicatesScenario: Scenario = {
  name: 'partitions: duplicate deliveries',
  promises: '1, 2',
  description:
    'P = 4, dual mode: the application’s explicit call races the partition drains over every submission as it is inserted; each partition’s drain message is delivered twice at once through POST /api/drain (one must answer skipped: leased) and once more afterwards',
  full: { trials: 6, events: 160 },
  quick: { trials: 1, events: 60 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const world = await PartitionWorld.open(env, tally, 'pdup', { partitions: 4 });
    try {
      const ctx = await routeContext({ ...env, db: world.db }, { STREAM_LAYOUT: 'database', STREAM_PARTITIONS: '4' }, world.clock);
      const deliver = (streamId: string) =>
        drainRoute.POST(request('POST', '/api/drain', { authorization: `Bearer ${CRON}`, 'content-type': 'application/json' }, JSON.stringify({ streamId })));
      const budgetMs = ctx.config.DRAIN_WINDOW_MS + SAFETY_MARGIN_MS;
      let bothPaths = 0;
      await world.drainUntilQuiet();
      for (let t = 0; t < opts.trials; t++) {
        tally.trial();
        const orgs = await world.organizations(`pdup${t}_`, ORGS);
        // The application dispatches each submission explicitly right after inserting it.
        const traffic = world.traffic(orgs, opts.events, { each: (docs, collection) => Promise.all(docs.map((d) => dispatchExplicit(ctx, d, { collection }))) });
        await until(() => traffic.ids.length > 0);
        const answers = await Promise.all(
          world.streams.map(async (s) => {
            const started = performance.now();
            const pair = await Promise.all([deliver(s.id), deliver(s.id)]);
            const took = performance.now() - started;
            tally.check(took <= budgetMs, `trial ${t}: two deliveries of ${s.id} took ${Math.round(took)} ms (window + margin ${budgetMs} ms)`);
            return { stream: s.id, statuses: pair.map((a) => a.status), bodies: (await Promise.all(pair.map((a) => a.json()))) as { run?: { status: string; stoppedBy: string } }[] };
          }),
        );
        await world.sample();
        for (const a of answers) {
          tally.check(a.statuses.every((s) => s === 200), `trial ${t}: deliveries of ${a.stream} answered ${a.statuses.join(', ')}`);
          tally.rejections(1, a.bodies.filter((b) => b.run?.status === 'skipped' && b.run.stoppedBy === 'leased').length);
        }
        await traffic.done;
        for (const s of world.streams) {
          const again = await deliver(s.id);
          tally.check(again.status === 200, `trial ${t}: the redelivery of ${s.id} answered ${again.status}`);
        }
        await world.drainUntilQuiet();
        await world.count(traffic.ids);
        await expectNoGap(world, tally, t);
        bothPaths += await world.writerDb.collection(COLLECTIONS.jobs).countDocuments({ submissionId: { $in: traffic.ids }, seenBy: { $all: ['explicit', 'change_stream'] } });
      }
      tally.note(`rejections: one of two simultaneous deliveries per partition and trial answered skipped: leased; jobs seen by both the explicit path and a partition stream (one job each): ${bothPaths}`);
      return tally.done();
    } finally {
      provideContext(null);
      await world.close();
    }
  },
};

const HISTORY_CASES: { kind: 'history_lost' | 'invalid_token'; fault: FailCommand }[] = [
  { kind: 'history_lost', fault: { failCommands: ['aggregate'], errorCode: 286, errorLabels: ['NonResumableChangeStreamError'] } },
  { kind: 'invalid_token', fault: { failCommands: ['aggregate'], errorCode: 260 } },
];

export const partitionHistoryScenario: Scenario = {
  name: 'partitions: lost history',
  promises: '1, 2, 3, 5',
  description:
    'P = 2; while submissions arrive, failCommand answers 286 ChangeStreamHistoryLost or 260 InvalidResumeToken to the aggregate that opens one partition’s stream; every submission of the partition’s collections must get its job once, one gap must be recorded for the partition with a window and a count covering what it missed',
  full: { trials: 8, events: 160 },
  quick: { trials: 2, events: 60 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const world = await PartitionWorld.open(env, tally, 'phist', { partitions: 2 });
    let recorded = 0;
    try {
      await world.drainUntilQuiet();
      for (let t = 0; t < opts.trials; t++) {
        tally.trial();
        const { kind, fault } = HISTORY_CASES[t % HISTORY_CASES.length]!;
        const orgs = await world.organizations(`phist${t}_`, ORGS);
        await world.drainUntilQuiet();
        // The partition of the first organization loses its history: it has submissions for sure.
        const P = world.options.partitions;
        const p = partitionOf(submissionsCollection(orgs[0]!), P);
        const stream = world.streams[p]!;
        const ofStream = (g: { streamId: string; reason: string }) => g.reason === kind && g.streamId.includes(stream.id);
        const gapsBefore = (await world.gaps()).map((g) => g.id);
        const traffic = world.traffic(orgs, opts.events);
        await until(() => traffic.ids.length >= opts.events / 2);
        // What the partition has not read when its history is lost: at least this much is in the gap.
        const missed = traffic.collections.filter((c) => partitionOf(c, P) === p).length;
        await armFailPoint(env.client, fault, { times: 1 });
        try {
          await world.drain(stream, { what: `the drain refused its resume point (${kind})`, onOverrun: () => clearFailPoint(env.client) });
        } finally {
          await clearFailPoint(env.client);
        }
        await traffic.done;
        await world.drainUntilQuiet();
        const fresh = (await world.gaps()).filter((g) => ofStream(g) && !gapsBefore.includes(g.id));
        const ok = fresh.length === 1 && fresh[0]!.count >= missed && fresh[0]!.from.getTime() < fresh[0]!.to.getTime();
        tally.check(ok, `trial ${t}: expected one ${kind} gap on ${stream.id} covering at least ${missed} submissions, found ${JSON.stringify(fresh.map((g) => ({ from: g.from, to: g.to, count: g.count })))}`);
        if (ok) recorded++;
        const otherGaps = (await world.gaps()).filter((g) => !g.streamId.includes(stream.id) && !gapsBefore.includes(g.id));
        tally.check(otherGaps.length === 0, `trial ${t}: a partition that lost nothing recorded a gap: ${otherGaps.map((g) => g.streamId).join(', ')}`);
        await world.count(traffic.ids);
      }
      tally.note(`gaps recorded once per fault, on the partition that lost its history, covering what it missed: ${recorded}/${opts.trials}`);
      return tally.done();
    } finally {
      await world.close();
    }
  },
};

/** Malformed submissions (organizationId present, formId missing, empty or not a string). */
const POISON = [
  (orgId: string) => ({ _id: new ObjectId(), organizationId: orgId, data: { noForm: true }, submittedAt: new Date() }),
  (orgId: string) => ({ _id: new ObjectId(), organizationId: orgId, formId: '', data: {}, submittedAt: new Date() }),
  (orgId: string) => ({ _id: new ObjectId(), organizationId: orgId, formId: 42, data: {}, submittedAt: new Date() }),
];

export const partitionPoisonScenario: Scenario = {
  name: 'partitions: poison documents',
  promises: '1, 2, 5',
  description:
    'P = 4; malformed submissions (no formId, empty, numeric) land in organizations’ collections and the shared one among good traffic while every partition drains; each is dead-lettered exactly once with a reason, also when the partitions read the same events again, and the good ones get their jobs',
  full: { trials: 4, events: 160 },
  quick: { trials: 1, events: 60 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const world = await PartitionWorld.open(env, tally, 'ppois', { partitions: 4 });
    const store = new CheckpointStore(world.db);
    try {
      await world.drainUntilQuiet();
      for (let t = 0; t < opts.trials; t++) {
        tally.trial();
        const orgs = await world.organizations(`ppois${t}_`, ORGS);
        await world.drainUntilQuiet();
        const starts = await Promise.all(world.streams.map(async (s) => (await store.get(s.id))?.token ?? null));
        const traffic = world.traffic(orgs, opts.events);
        const draining = Promise.all(world.streams.map((s) => world.drain(s)));
        await until(() => traffic.ids.length >= opts.events / 3);
        const poison = [...orgs.slice(0, 2).flatMap((org) => POISON.map((make) => ({ collection: submissionsCollection(org), doc: make(org) }))), ...POISON.map((make) => ({ collection: SHARED, doc: make(orgs[2]!) }))];
        for (const { collection, doc } of poison) await world.writerDb.collection(collection).insertOne(doc);
        await traffic.done;
        await draining;
        await world.drainUntilQuiet();
        // Read the same events again (as after a token reset): nothing is dead-lettered twice.
        for (const [i, s] of world.streams.entries()) {
          await store.collection.updateOne({ _id: s.id }, { $set: { token: starts[i] ?? null, tokenPos: null } });
          world.forgetPosition(s.id);
        }
        await world.drainUntilQuiet();
        const dead = await world.writerDb.collection(COLLECTIONS.deadLetters).find({ 'documentKey._id': { $in: poison.map((x) => x.doc._id) } }).toArray();
        const withReason = dead.filter((d) => d.code === 'malformed_submission' && /formId/.test(String(d.reason)));
        tally.rejections(poison.length, Math.min(poison.length, withReason.length));
        tally.check(dead.length === poison.length, `trial ${t}: ${dead.length} dead letters for ${poison.length} poison documents`);
        await world.count(traffic.ids);
        await expectNoGap(world, tally, t);
      }
      tally.note('rejected = poison documents dead-lettered with a reason naming formId (exactly once each, after two reads)');
      return tally.done();
    } finally {
      await world.close();
    }
  },
};

export const partitionDropRenameScenario: Scenario = {
  name: 'partitions: collection dropped and renamed',
  promises: '1, 2, 3',
  description:
    'P = 2; while submissions arrive and every partition has a window open, one organization’s collection is dropped and another’s renamed (the writer goes on writing to both names); the database streams step over the drop and rename events (no invalidate) and every submission, before and after, gets its job',
  full: { trials: 6, events: 150 },
  quick: { trials: 1, events: 60 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    const world = await PartitionWorld.open(env, tally, 'pddl', { partitions: 2 });
    // Windows that stay open through the drop and the rename.
    const patient = await world.context({ DRAIN_IDLE_MS: '1500' });
    try {
      await world.drainUntilQuiet();
      for (let t = 0; t < opts.trials; t++) {
        tally.trial();
        const orgs = await world.organizations(`pddl${t}_`, ORGS);
        await world.drainUntilQuiet();
        const traffic = world.traffic(orgs, opts.events);
        const open = Promise.all(world.streams.map((s) => world.drain(s, { ctx: patient, what: 'a window open through the drop and rename' })));
        await until(() => traffic.ids.length >= opts.events / 3);
        await world.writerDb.collection(submissionsCollection(orgs[0]!)).drop();
        await until(() => traffic.ids.length >= (2 * opts.events) / 3);
        await world.writerDb.collection(submissionsCollection(orgs[1]!)).rename(`archived_${orgs[1]}`);
        await traffic.done;
        const runs = (await open).flatMap((o) => (o.summary ? [o.summary] : []));
        runs.push(...(await world.drainUntilQuiet()));
        const invalidated = runs.filter((r) => r.recoveries.some((x) => x.kind === 'invalidate'));
        tally.check(invalidated.length === 0, `trial ${t}: a drop or rename invalidated a database stream (${invalidated.map((r) => r.streamId).join(', ')})`);
        const cps = await world.writerDb.collection<CheckpointDoc>(COLLECTIONS.checkpoints).find({ _id: { $in: world.streams.map((s) => s.id) } }).toArray();
        tally.check(cps.every((c) => !c.tokenIsInvalidate), `trial ${t}: a partition saved an invalidate token`);
        await world.count(traffic.ids);
        await expectNoGap(world, tally, t);
      }
      tally.note('each trial drops one organization’s collection and renames another’s while windows are open; writes to both names go on (the collections are created again)');
      return tally.done();
    } finally {
      await world.close();
    }
  },
};

export const partitionDropDatabaseScenario: Scenario = {
  name: 'partitions: dropDatabase',
  promises: '1, 2, 3',
  description:
    'P = 2; while submissions arrive and one partition has a window open, the platform database is dropped. The checkpoints are put back at once, as a deployment whose checkpoint store outlives the database would have them, and the organizations’ workflows are created again; each partition handles the invalidate and goes on, and every submission written after the workflows are back gets its job once (what came before is gone with the database; it is counted before the drop)',
  full: { trials: 4, events: 120 },
  quick: { trials: 1, events: 60 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    let invalidates = 0;
    for (let t = 0; t < opts.trials; t++) {
      tally.trial();
      // A database per trial: the drop takes everything with it.
      const world = await PartitionWorld.open(env, tally, `pdrop${t}`, { partitions: 2 });
      try {
        const patient = await world.context({ DRAIN_IDLE_MS: '1500' });
        const orgs = await world.organizations(`pdrop${t}_`, ORGS);
        await world.drainUntilQuiet();
        const before = world.traffic(orgs, Math.ceil(opts.events / 2));
        await before.done;
        await world.drainUntilQuiet();
        await world.count(before.ids);
        // From here the writer runs until stopped; only what it writes after the workflows are back counts.
        const traffic = world.traffic(orgs, Number.MAX_SAFE_INTEGER, { batch: 3 });
        const open = world.drain(world.streams[t % world.streams.length]!, { ctx: patient, what: 'a window open through dropDatabase' });
        await until(() => traffic.ids.length >= 6);
        const checkpoints = world.writerDb.collection<CheckpointDoc>(COLLECTIONS.checkpoints);
        const saved = await checkpoints.find({}).toArray();
        await world.writerDb.dropDatabase();
        await checkpoints.insertMany(saved);
        for (const org of orgs) await seedWorkflow(world.db, org);
        const from = await traffic.boundary();
        await until(() => traffic.ids.length >= from + Math.floor(opts.events / 2));
        await traffic.stop();
        const runs = [await open].flatMap((o) => (o.summary ? [o.summary] : []));
        // A window that lost its lease in the drop (its checkpoint was gone for a moment) keeps it until it expires.
        world.clock.advance(LEASE_EXPIRED_MS);
        runs.push(...(await world.drainUntilQuiet()));
        invalidates += runs.filter((r) => r.recoveries.some((x) => x.kind === 'invalidate')).length;
        await world.count(traffic.ids.slice(from));
        await expectNoGap(world, tally, t);
      } finally {
        await world.close();
      }
    }
    tally.note(`runs that handled the invalidate of dropDatabase: ${invalidates} (each of the 2 partitions sees it once per trial)`);
    return tally.done();
  },
};

export const partitionMigrationScenario: Scenario = {
  name: 'partitions: migration from the collection layout',
  promises: '1, 2, 3',
  description:
    'submissions keep arriving while a deployment drains them with per-organization and shared-collection streams (collection layout), then switches to P = 4 partition streams; the partitions start at the oldest saved token and every submission across the switch gets exactly one job (the overlap is absorbed by the job keys)',
  full: { trials: 4, events: 200 },
  quick: { trials: 1, events: 80 },
  async run(env, opts) {
    const tally = new Tally(this.name, this.promises);
    let absorbed = 0;
    let afterSwitch = 0;
    for (let t = 0; t < opts.trials; t++) {
      tally.trial();
      const world = await PartitionWorld.open(env, tally, `pmig${t}`, { partitions: 4 });
      try {
        const before = await world.context({ STREAM_LAYOUT: 'collection' });
        const orgs = await world.organizations(`pmig${t}_`, ORGS + 1);
        const old = await listStreams(before);
        await world.drainUntilQuiet(old, before);
        // The writer runs until stopped, so that it goes on across the switch.
        const traffic = world.traffic(orgs, Number.MAX_SAFE_INTEGER, { batch: 2 });
        // The old layout drains part of the traffic …
        await until(() => traffic.ids.length >= opts.events / 3);
        await Promise.all(old.map((s) => world.drain(s, { ctx: before, what: 'a collection-layout drain' })));
        // … and the deployment switches while submissions keep arriving.
        const atSwitch = traffic.ids.length;
        const runs = (await Promise.all(world.streams.map((s) => world.drain(s, { what: 'a first partition drain' })))).flatMap((o) => (o.summary ? [o.summary] : []));
        await until(() => traffic.ids.length >= Math.max(opts.events, atSwitch + opts.events / 3));
        await traffic.stop();
        afterSwitch += traffic.ids.length - atSwitch;
        runs.push(...(await world.drainUntilQuiet()));
        absorbed += runs.reduce((n, r) => n + r.duplicates, 0);
        await world.count(traffic.ids);
        const total = await world.writerDb.collection(COLLECTIONS.jobs).countDocuments({});
        tally.check(total === traffic.ids.length, `trial ${t}: ${total} jobs in the database for ${traffic.ids.length} submissions`);
        await expectNoGap(world, tally, t);
      } finally {
        await world.close();
      }
    }
    tally.note(`submissions written after the switch: ${afterSwitch}; jobs the partitions found already written by the old streams (absorbed by the job keys): ${absorbed}`);
    return tally.done();
  },
};

/** Every partition row, in the order the table shows them. */
export const PARTITION_SCENARIOS: readonly Scenario[] = [
  partitionCrashScenario,
  partitionNetworkScenario,
  partitionDuplicatesScenario,
  partitionHistoryScenario,
  partitionPoisonScenario,
  partitionDropRenameScenario,
  partitionDropDatabaseScenario,
  partitionMigrationScenario,
];
