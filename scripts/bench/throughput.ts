/**
 * Section 1 and 2: the drain against a bare change-stream read loop over the same backlog, and the
 * change-stream path against the explicit per-submission path, with round trips counted by driver
 * command monitoring (never estimated).
 */
import type { Db, Document, MongoClient } from 'mongodb';
import type { AppContext } from '../../lib/platform/context.js';
import { CheckpointStore } from '../../lib/streams/checkpoint.js';
import { drainStream } from '../../lib/drain/drain.js';
import { submissionsCollection } from '../../lib/data/mongo.js';
import { orgStream } from '../../lib/streams/refs.js';
import { dispatchExplicit } from '../../lib/dispatch/explicit.js';
import type { SubmissionDoc } from '../../lib/data/documents.js';
import { CommandCounter, median, perSecond, round, timed, timedWithCpu } from './measure.js';
import { benchContext, countJobs, insertBacklog, seedWorkflow } from './setup.js';

export interface ThroughputOptions {
  uri: string;
  /** Client created with `monitorCommands: true`; the product code runs on it. */
  client: MongoClient;
  db: Db;
  /** Events per round. */
  events: number;
  rounds: number;
  /** Submissions through the explicit path. */
  explicitEvents: number;
  /** Submissions in flight at once in the concurrent explicit variant. */
  explicitConcurrency: number;
  /** CPU time of the backend process (ms), or null; see RunningBackend.cpuMs. */
  backendCpuMs: () => number | null;
  log: (line: string) => void;
}

export interface DrainRound {
  events: number;
  bareMs: number;
  bareEventsPerSec: number;
  drainMs: number;
  drainEventsPerSec: number;
  ratio: number;
  commands: Record<string, number>;
  /** Time the driver waited for each kind of command during the drain (ms, summed). */
  commandMs: Record<string, number>;
  roundTripsPerEvent: number;
  /** The drain's own count in its run summary, for comparison. */
  summaryRoundTrips: number;
  /**
   * CPU time of the process running the drain (planning jobs, the driver's BSON work, bookkeeping).
   * Measured, not derived from waits: the drain overlaps a batch's write with the next read.
   */
  drainCpuMs: number;
  /** Backend CPU / wall time during the bare read and during the drain (1 = one core busy); null if not observable. */
  backendBusyBare: number | null;
  backendBusyDrain: number | null;
  jobsCreated: number;
  lost: number;
  duplicated: number;
}

export interface ExplicitRun {
  concurrency: number;
  events: number;
  ms: number;
  eventsPerSec: number;
  commands: Record<string, number>;
  commandMs: Record<string, number>;
  roundTripsPerEvent: number;
  lost: number;
  duplicated: number;
}

export interface ThroughputResult {
  batchSize: number;
  rounds: DrainRound[];
  /** Medians over the rounds. */
  bareEventsPerSec: number;
  drainEventsPerSec: number;
  drainVsBareRatio: number;
  changeStreamRoundTripsPerEvent: number;
  explicit: ExplicitRun[];
}

/** The pipeline the drain opens for an insert-only registry (lib/drain/session.ts `open`). */
const DRAIN_PIPELINE: Document[] = [{ $match: { operationType: { $in: ['insert', 'drop', 'rename', 'dropDatabase', 'invalidate'] } } }];

export async function runThroughput(o: ThroughputOptions): Promise<ThroughputResult> {
  const counter = new CommandCounter(o.client, o.db.databaseName);
  const rounds: DrainRound[] = [];
  let batchSize = 0;
  try {
    for (let r = 0; r < o.rounds; r++) {
      const orgId = `bench_tp${r}`;
      // The run stops once it has read the whole backlog (max_events), so no idle wait is timed.
      const ctx = await benchContext(o.uri, o.client, o.db, { DRAIN_MAX_EVENTS: String(o.events), DRAIN_IDLE_MS: '300' });
      batchSize = ctx.config.DRAIN_BATCH_SIZE;
      await seedWorkflow(o.db, orgId);
      await drainStream(ctx, orgStream(orgId)); // no token yet: starts at now and saves it
      const token = (await new CheckpointStore(o.db).get(orgStream(orgId).id))?.token;
      if (!token) throw new Error('the first drain saved no token');
      const { ids } = await insertBacklog(o.db, orgId, o.events);

      const bare = await timedWithCpu(o.backendCpuMs, () => bareRead(o.db, orgId, token, o.events, batchSize, ctx.config.DRAIN_MAX_AWAIT_MS));
      counter.start();
      const cpuBefore = process.cpuUsage();
      const drain = await timedWithCpu(o.backendCpuMs, () => drainStream(ctx, orgStream(orgId), { windowMs: 52_000, startedBy: 'manual' }));
      const cpu = process.cpuUsage(cpuBefore);
      const commands = counter.stop();
      if (drain.value.events !== o.events || drain.value.stoppedBy !== 'max_events') {
        throw new Error(`drain round ${r} read ${drain.value.events}/${o.events} events and stopped by ${drain.value.stoppedBy}`);
      }
      const jobs = await countJobs(o.db, orgId, ids);
      const round_: DrainRound = {
        events: o.events,
        bareMs: round(bare.ms, 1),
        bareEventsPerSec: round(perSecond(bare.value, bare.ms)),
        drainMs: round(drain.ms, 1),
        drainEventsPerSec: round(perSecond(drain.value.events, drain.ms)),
        ratio: round(bare.ms / drain.ms, 3),
        commands: commands.byCommand,
        commandMs: commands.msByCommand,
        roundTripsPerEvent: round(commands.total / drain.value.events, 4),
        summaryRoundTrips: drain.value.roundTrips,
        drainCpuMs: round((cpu.user + cpu.system) / 1000),
        backendBusyBare: bare.busy,
        backendBusyDrain: drain.busy,
        jobsCreated: drain.value.jobsCreated,
        lost: jobs.lost,
        duplicated: jobs.duplicated,
      };
      rounds.push(round_);
      o.log(`  round ${r + 1}/${o.rounds}: bare ${round_.bareEventsPerSec}/s, drain ${round_.drainEventsPerSec}/s, ratio ${round_.ratio}, ${round_.roundTripsPerEvent} round trips/event`);
      o.log(`    drain waited on: ${Object.entries(round_.commandMs).map(([k, v]) => `${k} ${v} ms ×${round_.commands[k]}`).join(', ')} (of ${Math.round(drain.ms)} ms); backend CPU busy ${round_.backendBusyBare ?? '?'} (bare) / ${round_.backendBusyDrain ?? '?'} (drain); drain process CPU busy ${round(round_.drainCpuMs / drain.ms, 2)}`);
    }
    const explicit: ExplicitRun[] = [];
    for (const concurrency of [1, o.explicitConcurrency]) {
      explicit.push(await runExplicit(o, counter, concurrency));
      const e = explicit[explicit.length - 1]!;
      o.log(`  explicit path, ${concurrency} at a time: ${e.eventsPerSec}/s, ${e.roundTripsPerEvent} round trips/submission`);
    }
    return {
      batchSize,
      rounds,
      bareEventsPerSec: median(rounds.map((r) => r.bareEventsPerSec)),
      drainEventsPerSec: median(rounds.map((r) => r.drainEventsPerSec)),
      drainVsBareRatio: median(rounds.map((r) => r.ratio)),
      changeStreamRoundTripsPerEvent: median(rounds.map((r) => r.roundTripsPerEvent)),
      explicit,
    };
  } finally {
    counter.dispose();
  }
}

/** Read `n` events from `token` with tryNext until caught up: what reading alone costs. */
async function bareRead(db: Db, orgId: string, token: unknown, n: number, batchSize: number, maxAwaitTimeMS: number): Promise<number> {
  const cs = db.collection(submissionsCollection(orgId)).watch(DRAIN_PIPELINE, { batchSize, maxAwaitTimeMS, resumeAfter: token as Document });
  try {
    let read = 0;
    while (read < n) {
      if (await cs.tryNext()) read++;
    }
    return read;
  } finally {
    await cs.close();
  }
}

/**
 * Today's design: after saving each submission the handler looks up the form's workflows and
 * inserts the jobs (`dispatchExplicit`). The submissions are saved first, outside the measurement,
 * as they are on the change-stream path.
 */
async function runExplicit(o: ThroughputOptions, counter: CommandCounter, concurrency: number): Promise<ExplicitRun> {
  const orgId = `bench_explicit_c${concurrency}`;
  const ctx: AppContext = await benchContext(o.uri, o.client, o.db);
  await seedWorkflow(o.db, orgId);
  const { ids } = await insertBacklog(o.db, orgId, o.explicitEvents);
  const docs = await o.db.collection<SubmissionDoc>(submissionsCollection(orgId)).find({}).toArray();
  let next = 0;
  counter.start();
  const run = await timed(() =>
    Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < docs.length) await dispatchExplicit(ctx, docs[next++]!);
      }),
    ),
  );
  const commands = counter.stop();
  const jobs = await countJobs(o.db, orgId, ids);
  return {
    concurrency,
    events: docs.length,
    ms: round(run.ms, 1),
    eventsPerSec: round(perSecond(docs.length, run.ms)),
    commands: commands.byCommand,
    commandMs: commands.msByCommand,
    roundTripsPerEvent: round(commands.total / docs.length, 3),
    lost: jobs.lost,
    duplicated: jobs.duplicated,
  };
}
