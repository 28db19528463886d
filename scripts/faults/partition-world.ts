/**
 * The `database` stream layout under faults: a platform database of its own per world (a partition
 * stream watches every collection of its database, so no other scenario's data may be in it),
 * organizations with one active workflow each, traffic spread over their `submissions_{orgId}`
 * collections and the legacy shared collection, and the checks every partition scenario makes:
 *
 * - every submission inserted gets exactly one job (one workflow per organization): `count`;
 * - the saved token of a stream never moves back: a sampler reads every checkpoint every 10 ms
 *   while the world is open, and once more after each drain;
 * - no invocation overruns its deadline: every drain is timed against its window + SAFETY_MARGIN_MS
 *   (the lease's expiry; the function's own limit is later still);
 * - no gap goes unrecorded: `gaps` reads what the checkpoints recorded.
 *
 * The traffic is written through a second client with its own appName, so the fail points armed for
 * the product's client (`env.client`) never hit the writer or the checks.
 */
import { randomBytes } from 'node:crypto';
import { MongoClient, ObjectId, type Db } from 'mongodb';
import { drainStream, type DrainOptions } from '../../lib/drain/drain.js';
import { runRecovery } from '../../lib/drain/recovery-run.js';
import { recoveryId } from '../../lib/drain/partition-recovery.js';
import { COLLECTIONS, submissionsCollection } from '../../lib/data/mongo.js';
import { SAFETY_MARGIN_MS } from '../../lib/platform/limits.js';
import type { AppContext } from '../../lib/platform/context.js';
import { CheckpointStore } from '../../lib/streams/checkpoint.js';
import { partitionStreams, type StreamRef } from '../../lib/streams/refs.js';
import type { CheckpointDoc, DrainSummary, GapRecord, SubmissionDoc } from '../../lib/data/documents.js';
import { OffsetClock } from '../../test/support/context.js';
import { seedWorkflow, submission } from '../bench/setup.js';
import { faultContext, type Tally } from './support.js';
import type { FaultEnv } from './types.js';

/** The legacy shared collection the traffic writes to besides the organizations' own collections. */
export const SHARED = 'global_submissions';

export interface WorldOptions {
  /** STREAM_PARTITIONS (P). */
  partitions: number;
  /** Configuration on top of FAULT_ENV and the database layout. */
  env?: Record<string, string>;
}

/** One drain as the world ran it: its summary, or what it threw (only taking the lease can throw). */
export type Outcome = { summary: DrainSummary; threw: null } | { summary: null; threw: Error };

/** A writer inserting submissions while a fault happens; `ids` grows as inserts are acknowledged. */
export interface Traffic {
  readonly ids: string[];
  /** The collection of each id, in the same order. */
  readonly collections: string[];
  /**
   * Resolves with `ids.length` before the writer issues its next insert: every id from that index on
   * was inserted after the call (e.g. after workflows were created).
   */
  boundary(): Promise<number>;
  /** Resolves when the writer has inserted its submissions (or was stopped). */
  readonly done: Promise<void>;
  /** Stop after the insert under way. */
  stop(): Promise<void>;
}

/** How long the server must have been up before a world creates workflows (see historyReachesBack). */
const UPTIME_MS = 2_000;

/**
 * Wait until the server has been up for UPTIME_MS (`serverStatus.uptimeMillis`). A new stream starts
 * where its first workflow came into force (seconds precision); when that second is the one in which
 * the server started, its history does not reach that far and the drain rightly records a
 * history-lost gap. Worlds created right after `npm run faults` started the server would see such
 * gaps where their scenarios expect none.
 */
async function historyReachesBack(admin: Db): Promise<void> {
  for (;;) {
    const status = await admin.command({ serverStatus: 1 });
    if (Number(status.uptimeMillis ?? Infinity) >= UPTIME_MS) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export class PartitionWorld {
  private sampler: NodeJS.Timeout | null = null;
  private sampling: Promise<void> | null = null;
  /** The last non-null token position seen per stream id. */
  private readonly positions = new Map<string, string>();
  /** The sample in progress (samples are chained). */
  private samples: Promise<void> = Promise.resolve();
  /** Regressions already reported (the sampler sees one many times). */
  private readonly reported = new Set<string>();
  readonly streams: StreamRef[];

  private constructor(
    private readonly env: FaultEnv,
    private readonly tally: Tally,
    private readonly writer: MongoClient,
    readonly db: Db,
    readonly ctx: AppContext,
    readonly clock: OffsetClock,
    readonly options: WorldOptions,
  ) {
    this.streams = partitionStreams(options.partitions);
  }

  /** A fresh database `{env.db}_{label}…`, a database-layout context on it, and the token sampler running. */
  static async open(env: FaultEnv, tally: Tally, label: string, options: WorldOptions): Promise<PartitionWorld> {
    const name = `${env.db.databaseName}_${label}${randomBytes(2).toString('hex')}`.slice(0, 63);
    const db = env.client.db(name);
    const clock = new OffsetClock();
    const ctx = await faultContext(env, { STREAM_LAYOUT: 'database', STREAM_PARTITIONS: String(options.partitions), ...options.env }, clock, db);
    const writer = new MongoClient(env.uri, { appName: `${env.client.options.appName ?? 'faults'}_traffic`, serverSelectionTimeoutMS: 10_000 });
    await writer.connect();
    await historyReachesBack(writer.db('admin'));
    const world = new PartitionWorld(env, tally, writer, db, ctx, clock, options);
    world.startSampler();
    return world;
  }

  /** The world's database through the writer's client (not subject to the product client's fail points). */
  get writerDb(): Db {
    return this.writer.db(this.db.databaseName);
  }

  /** A context of the same world with other settings (another layout, a longer idle time). */
  async context(overrides: Record<string, string>): Promise<AppContext> {
    return faultContext(this.env, { STREAM_LAYOUT: 'database', STREAM_PARTITIONS: String(this.options.partitions), ...this.options.env, ...overrides }, this.clock, this.db);
  }

  /** `n` new organizations (ids `{prefix}{i}_{random}`), one active workflow each on form `contact`. */
  async organizations(prefix: string, n: number): Promise<string[]> {
    const orgs = Array.from({ length: n }, (_, i) => `${prefix}${i}_${randomBytes(3).toString('hex')}`);
    for (const org of orgs) await seedWorkflow(this.db, org);
    return orgs;
  }

  /**
   * Insert `total` submissions in batches of `batch`, pausing `pauseMs` between batches, each batch
   * into one organization's collection or (one in `orgs.length + 1`) the shared collection with one of
   * the organizations as `organizationId`. `each` sees every batch after it was acknowledged (the
   * application's explicit call, in dual mode).
   */
  traffic(orgs: readonly string[], total: number, opts: { batch?: number; pauseMs?: number; each?: (docs: SubmissionDoc[], collection: string) => Promise<unknown> } = {}): Traffic {
    const ids: string[] = [];
    const collections: string[] = [];
    const waiting: ((n: number) => void)[] = [];
    const batch = opts.batch ?? Math.max(1, Math.ceil(total / 25));
    const pauseMs = opts.pauseMs ?? 15;
    let stopped = false;
    let n = 0;
    const db = this.writerDb;
    let finished = false;
    const done = (async () => {
      try {
        while (!stopped && ids.length < total) {
          for (const resolve of waiting.splice(0)) resolve(ids.length);
          const pick = n++ % (orgs.length + 1);
          const org = orgs[pick === orgs.length ? n % orgs.length : pick]!;
          const collection = pick === orgs.length ? SHARED : submissionsCollection(org);
          const docs = Array.from({ length: Math.min(batch, total - ids.length) }, (_, i) => submission(org, ids.length + i, new ObjectId()));
          await db.collection<SubmissionDoc>(collection).insertMany(docs, { ordered: true });
          ids.push(...docs.map((d) => (d._id as ObjectId).toHexString()));
          collections.push(...docs.map(() => collection));
          if (opts.each) await opts.each(docs, collection);
          await new Promise((r) => setTimeout(r, pauseMs));
        }
      } finally {
        finished = true;
        for (const resolve of waiting.splice(0)) resolve(ids.length);
      }
    })();
    done.catch(() => undefined);
    return {
      ids,
      collections,
      boundary: () => (finished ? Promise.resolve(ids.length) : new Promise<number>((resolve) => waiting.push(resolve))),
      done,
      stop: async () => {
        stopped = true;
        await done;
      },
    };
  }

  /**
   * One drain of `stream`, timed: a run still going at window + SAFETY_MARGIN_MS is a failure of
   * promise 4 (`onOverrun` runs then, e.g. to clear a fail point so the run can end). The saved
   * tokens are sampled once the run ended.
   */
  async drain(stream: StreamRef, opts: DrainOptions & { ctx?: AppContext; what?: string; onOverrun?: () => Promise<void> } = {}): Promise<Outcome> {
    const ctx = opts.ctx ?? this.ctx;
    const budgetMs = (opts.windowMs ?? ctx.config.DRAIN_WINDOW_MS) + SAFETY_MARGIN_MS;
    const started = performance.now();
    const running: Promise<Outcome> = drainStream(ctx, stream, opts).then(
      (summary) => ({ summary, threw: null }),
      (error: unknown) => ({ summary: null, threw: error instanceof Error ? error : new Error(String(error)) }),
    );
    let timer: NodeJS.Timeout | undefined;
    const overran = await Promise.race([running.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), budgetMs)))]);
    clearTimeout(timer);
    if (overran) await opts.onOverrun?.();
    const outcome = await running;
    const took = Math.round(performance.now() - started);
    this.tally.check(!overran, `${opts.what ?? 'a drain'} of ${stream.id} did not end within window + margin (${budgetMs} ms); it ended after ${took} ms`);
    await this.sample();
    return outcome;
  }

  /**
   * Drain every stream (default: every partition) until a run reads nothing and leaves no recovery
   * pending, at most `maxRuns` runs each — what the relay or the next cron ticks do after a fault.
   * A stream that is still not quiet then is a failure.
   */
  async drainUntilQuiet(streams: readonly StreamRef[] = this.streams, ctx: AppContext = this.ctx, maxRuns = 8): Promise<DrainSummary[]> {
    const store = new CheckpointStore(this.db);
    const runs: DrainSummary[] = [];
    for (const stream of streams) {
      let quiet = false;
      for (let i = 0; i < maxRuns && !quiet; i++) {
        const { summary, threw } = await this.drain(stream, { ctx, what: 'a drain after the fault' });
        if (summary) runs.push(summary);
        quiet = !threw && summary.status === 'completed' && summary.events === 0 && !(await store.get(stream.id))?.recovery;
      }
      this.tally.check(quiet, `${stream.id} was not quiet after ${maxRuns} runs`);
      if (stream.kind !== 'partition') continue;
      // A gap the partition handed over is scanned by its recovery runs, as the cron tick or a
      // QStash message would start them (lib/drain/recovery-run.ts).
      let left = 1;
      for (let i = 0; i < maxRuns && left > 0; i++) left = (await runRecovery(ctx, stream)).windowsLeft;
      this.tally.check(left === 0, `${recoveryId(stream)} still had ${left} window(s) after ${maxRuns} runs`);
    }
    return runs;
  }

  /**
   * Add to the tally the jobs of `ids` (every organization has one workflow: one job each), counted
   * by submission over the whole database, organization collections and the shared one alike.
   */
  async count(ids: readonly string[]): Promise<void> {
    const rows = await this.writerDb
      .collection(COLLECTIONS.jobs)
      .aggregate<{ _id: string; n: number }>([{ $match: { submissionId: { $in: [...ids] } } }, { $group: { _id: '$submissionId', n: { $sum: 1 } } }])
      .toArray();
    const per = new Map(rows.map((r) => [r._id, r.n]));
    let found = 0;
    let lost = 0;
    let duplicated = 0;
    for (const id of ids) {
      const c = per.get(id) ?? 0;
      found += c;
      if (c === 0) lost++;
      else duplicated += c - 1;
    }
    this.tally.add({ expected: ids.length, found, lost, duplicated });
  }

  /** The gaps recorded on the checkpoints of this world's database, with the stream that recorded each. */
  async gaps(): Promise<(GapRecord & { streamId: string })[]> {
    const docs = await this.writerDb.collection<CheckpointDoc>(COLLECTIONS.checkpoints).find({}, { projection: { gaps: 1 } }).toArray();
    return docs.flatMap((d) => (d.gaps ?? []).map((g) => ({ ...g, streamId: d._id })));
  }

  /** Forget the sampled position of a stream whose token is moved back on purpose (re-reading events). */
  forgetPosition(streamId: string): void {
    this.positions.delete(streamId);
  }

  /**
   * Read every checkpoint's token position; a position before the last one seen is a failure.
   * Samples run one after another: of two overlapping reads, the older answer could be compared
   * after the newer one and look like a step back.
   */
  sample(): Promise<void> {
    const next = this.samples.then(() => this.sampleOnce());
    this.samples = next.catch(() => undefined);
    return next;
  }

  private async sampleOnce(): Promise<void> {
    const docs = await this.writerDb
      .collection<CheckpointDoc & { tokenPos?: string | null }>(COLLECTIONS.checkpoints)
      .find({}, { projection: { tokenPos: 1 } })
      .toArray();
    for (const d of docs) {
      if (!d.tokenPos) continue; // no token yet, or dropped on purpose for a start time (a recovery)
      const last = this.positions.get(d._id);
      const back = `the saved token of ${d._id} moved back (${last} → ${d.tokenPos})`;
      if (last && d.tokenPos < last && !this.reported.has(back)) {
        this.reported.add(back);
        this.tally.check(false, back);
      }
      if (!last || d.tokenPos > last) this.positions.set(d._id, d.tokenPos);
    }
  }

  private startSampler(): void {
    const tick = () => {
      this.sampling = this.sample()
        .catch(() => undefined) // a read racing dropDatabase; the next sample reads again
        .finally(() => {
          if (this.sampler) this.sampler = setTimeout(tick, 10);
        });
    };
    this.sampler = setTimeout(tick, 10);
  }

  /** Stop the sampler, drop the database, close the writer's client. */
  async close(): Promise<void> {
    const timer = this.sampler;
    this.sampler = null;
    if (timer) clearTimeout(timer);
    await this.sampling;
    await this.sample().catch(() => undefined);
    await this.db.dropDatabase().catch(() => undefined);
    await this.writer.close();
  }
}
