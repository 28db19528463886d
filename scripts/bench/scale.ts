/**
 * Section "scale": many organizations, both stream layouts side by side (README "Stream layouts").
 *
 * Per run: N organizations, each with one active workflow whose webhook posts to a local sink (this
 * process), and a `submissions_{orgId}` collection created by its first insert (creating 10,000
 * collections up front on the emulator costs minutes and changes nothing the streams see). Poisson
 * submissions, spread uniformly over the organizations, are saved by the application's own client.
 *
 * (a) `collection` layout, today's rotation: a simulated cron tick every `tickMs` (shorter than the
 *     real minute) plans the stalest MAX_CONCURRENT_DRAINS streams (`planTick`) and runs their drains
 *     at once, as QStash would deliver them; the job processor runs once per tick, as the minute cron
 *     runs it. Delays are reported in ticks and projected to the real one-minute cadence
 *     (ticks × 60 s; the drains' own seconds are not scaled). The run is bounded: organizations the
 *     rotation has not reached by then are counted as not served, and the delay of a full rotation is
 *     projected from N / MAX_CONCURRENT_DRAINS.
 * (b) `database` layout, P partitions drained as a continuous relay in this process
 *     (lib/fanout/runner.ts) with the in-process job kick (`runJobsNow`, lib/jobs/kick.ts).
 *
 * Measured per submission (wall clock, Date.now(), one process): sent = just before `insertOne`;
 * job = the job's `createdAt`; delivered = the sink's arrival time of the first POST carrying the
 * job's Idempotency-Key. Function invocations and function-seconds count drain windows, fan-out
 * ticks and processor runs with their durations. Cursors: `serverStatus.metrics.cursor.open.total`
 * polled every 250 ms (all cursors of the server, change streams included).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MongoClient, ObjectId, type Db } from 'mongodb';
import { loadConfig } from '../../lib/platform/config.js';
import { buildContext, type AppContext } from '../../lib/platform/context.js';
import { silentLogger } from '../../lib/platform/log.js';
import { COLLECTIONS, submissionsCollection } from '../../lib/data/mongo.js';
import type { CheckpointDoc, DrainSummary, SubmissionDoc, WorkflowDoc } from '../../lib/data/documents.js';
import { listStreams, partitionStreams } from '../../lib/streams/refs.js';
import { planTick } from '../../lib/fanout/tick.js';
import { drainStream } from '../../lib/drain/drain.js';
import { startRelayRunners } from '../../lib/fanout/runner.js';
import { processJobs } from '../../lib/jobs/process.js';
import { singleFlightRuns } from '../../lib/jobs/kick.js';
import { percentile, round } from './measure.js';
import { BENCH_ENV, submission } from './setup.js';

export interface ScaleOptions {
  uri: string;
  client: MongoClient;
  appClient: MongoClient;
  dbPrefix: string;
  orgCounts: number[];
  partitions: number[];
  /** Which layouts to run (default both): one row of the table can be re-run alone. */
  layouts?: ('collection' | 'database')[];
  ratePerSec: number;
  trafficMs: number;
  /** Simulated cron period of the collection layout (the real one is 60 s). */
  tickMs: number;
  /** Ticks after the traffic before the collection layout's run is cut off. */
  settleTicks: number;
  /** Bound on waiting for the database layout's last jobs and deliveries after the traffic. */
  settleMs: number;
  log: (line: string) => void;
}

export interface LayoutFigures {
  layout: string;
  organizations: number;
  partitions: number | null;
  submissions: number;
  achievedRatePerSec: number;
  insertToJob: { p50Ms: number | null; p99Ms: number | null };
  insertToWebhook: { p50Ms: number | null; p99Ms: number | null };
  /** Collection layout: the same delays in ticks and projected to the real minute cadence. */
  ticks?: {
    tickMs: number;
    ran: number;
    jobP50Ticks: number | null;
    jobP99Ticks: number | null;
    projectedJobP50Min: number | null;
    projectedJobP99Min: number | null;
    /** A full rotation of N organizations at MAX_CONCURRENT_DRAINS per tick: a projection, not a measurement. */
    projectedRotationTicks: number;
    projectedFullRotationMin: number;
    organizationsReached: number;
  };
  invocationsPerMin: number;
  functionSecondsPerMin: number;
  maxOpenCursors: number;
  baselineCursors: number;
  roundTripsPerEvent: number | null;
  /**
   * Database layout: the relay's handover gaps (predecessor's release → successor's first read,
   * lib/fanout/relay.ts), as recorded on the partitions' checkpoints (the last 50 each), ms.
   */
  handoverGapsMs?: { count: number; p50: number | null; max: number | null };
  /** Submissions without a job / delivery when the bounded period ended. */
  withoutJob: number;
  withoutDelivery: number;
  duplicatedJobs: number;
  duplicatedDeliveries: number;
  seedMs: number;
  wallMs: number;
}

interface Sink {
  url: string;
  arrivals: Map<string, number>;
  counts: Map<string, number>;
  close(): Promise<void>;
}

async function startSink(): Promise<Sink> {
  const arrivals = new Map<string, number>();
  const counts = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const at = Date.now();
    req.on('data', () => {});
    req.on('end', () => {
      const key = req.headers['idempotency-key'];
      if (typeof key === 'string') {
        if (!arrivals.has(key)) arrivals.set(key, at);
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    arrivals,
    counts,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

function orgIds(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `org${String(i).padStart(5, '0')}`);
}

/** One active workflow per organization, in insertMany batches. */
async function seedOrgs(db: Db, orgs: string[], url: string): Promise<Map<string, string>> {
  const wfOf = new Map<string, string>();
  for (let i = 0; i < orgs.length; i += 1000) {
    const docs: WorkflowDoc[] = orgs.slice(i, i + 1000).map((orgId) => {
      const _id = new ObjectId().toHexString();
      wfOf.set(orgId, _id);
      return { _id, organizationId: orgId, formId: 'contact', name: 'Notify', status: 'active', steps: [{ type: 'webhook', url }], updatedAt: new Date() };
    });
    await db.collection<WorkflowDoc>(COLLECTIONS.workflows).insertMany(docs, { ordered: false });
  }
  return wfOf;
}

class CursorPoller {
  max = 0;
  private timer: NodeJS.Timeout | null = null;
  constructor(private readonly client: MongoClient) {}
  async read(): Promise<number> {
    const s = await this.client.db('admin').command({ serverStatus: 1 });
    return Number(s.metrics?.cursor?.open?.total ?? 0);
  }
  start(): void {
    const tick = async () => {
      try {
        this.max = Math.max(this.max, await this.read());
      } catch {
        // a missed sample only lowers the chance of seeing the peak
      }
      if (this.timer) this.timer = setTimeout(tick, 250);
    };
    this.timer = setTimeout(tick, 0);
  }
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** Poisson arrivals at `rate`/s for `ms`, each to a uniformly drawn organization. */
async function traffic(appDb: Db, orgs: string[], rate: number, ms: number, sent: Map<string, { orgId: string; at: number }>): Promise<number> {
  const inserts: Promise<unknown>[] = [];
  const t0 = performance.now();
  let due = 0;
  let i = 0;
  for (;;) {
    due += (-Math.log(1 - Math.random()) * 1000) / rate;
    if (due >= ms) break;
    const wait = t0 + due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const orgId = orgs[Math.floor(Math.random() * orgs.length)]!;
    const id = new ObjectId();
    sent.set(id.toHexString(), { orgId, at: Date.now() });
    inserts.push(appDb.collection<SubmissionDoc>(submissionsCollection(orgId)).insertOne(submission(orgId, i++, id)));
  }
  await Promise.all(inserts);
  return (performance.now() - t0) / 1000;
}

interface JobRow {
  count: number;
  createdAt: number;
  key: string;
}

async function jobsBySubmission(db: Db): Promise<Map<string, JobRow>> {
  const out = new Map<string, JobRow>();
  const cursor = db.collection(COLLECTIONS.jobs).find({}, { projection: { _id: 0, submissionId: 1, createdAt: 1, key: 1 }, batchSize: 10_000 });
  for await (const j of cursor) {
    const id = String(j.submissionId);
    const row = out.get(id);
    if (row) row.count++;
    else out.set(id, { count: 1, createdAt: (j.createdAt as Date).getTime(), key: j.key as string });
  }
  return out;
}

function outcome(sent: Map<string, { orgId: string; at: number }>, jobs: Map<string, JobRow>, sink: Sink) {
  const toJob: number[] = [];
  const toHook: number[] = [];
  let withoutJob = 0;
  let withoutDelivery = 0;
  let duplicatedJobs = 0;
  let duplicatedDeliveries = 0;
  for (const [id, s] of sent) {
    const job = jobs.get(id);
    if (!job) {
      withoutJob++;
      withoutDelivery++;
      continue;
    }
    duplicatedJobs += job.count - 1;
    toJob.push(job.createdAt - s.at);
    const arrived = sink.arrivals.get(job.key);
    if (arrived === undefined) withoutDelivery++;
    else {
      toHook.push(arrived - s.at);
      duplicatedDeliveries += (sink.counts.get(job.key) ?? 1) - 1;
    }
  }
  toJob.sort((a, b) => a - b);
  toHook.sort((a, b) => a - b);
  const p = (xs: number[], q: number) => (xs.length ? round(percentile(xs, q), 1) : null);
  return { toJob, toHook, withoutJob, withoutDelivery, duplicatedJobs, duplicatedDeliveries, p };
}

async function context(o: ScaleOptions, db: Db, env: Record<string, string>, runJobsNow?: () => void): Promise<AppContext> {
  const config = loadConfig({ MONGODB_URI: o.uri, MONGODB_DB: db.databaseName, ...BENCH_ENV, ...env });
  return buildContext(config, { client: o.client, db, log: silentLogger, publisher: null, ...(runJobsNow ? { runJobsNow } : {}) });
}

/** A layout's own database with N organizations seeded (an active workflow each, webhooks to a new sink), and the seeding time. */
async function seedLayout(o: ScaleOptions, dbName: string, n: number) {
  const db = o.client.db(dbName);
  const sink = await startSink();
  const orgs = orgIds(n);
  const t0 = performance.now();
  await seedOrgs(db, orgs, sink.url);
  return { db, sink, orgs, seedMs: performance.now() - t0 };
}

/** (a) The collection layout with the minute rotation, ticks simulated every `tickMs`. */
async function runCollection(o: ScaleOptions, n: number): Promise<LayoutFigures> {
  const dbName = `${o.dbPrefix}_c${n}`;
  const { db, sink, orgs, seedMs } = await seedLayout(o, dbName, n);
  const ctx = await context(o, db, { STREAM_LAYOUT: 'collection', RELAY: 'tick' });
  const cursors = new CursorPoller(o.appClient);
  const baselineCursors = await cursors.read();
  cursors.start();

  const runs: DrainSummary[] = [];
  const processorMs: number[] = [];
  const tickMs: number[] = [];
  const reached = new Set<string>();
  const inFlight = new Set<Promise<unknown>>();
  let ticks = 0;
  const tickOnce = async () => {
    const tStart = performance.now();
    const streams = await listStreams(ctx);
    const cps = await db
      .collection<CheckpointDoc>(COLLECTIONS.checkpoints)
      .find({ _id: { $in: streams.map((s) => s.id) } }, { projection: { _id: 1, tokenSavedAt: 1, lease: 1, state: 1 } })
      .toArray();
    const plan = planTick(streams, cps, Date.now(), ctx.config.MAX_CONCURRENT_DRAINS);
    tickMs.push(performance.now() - tStart);
    ticks++;
    for (const s of plan.selected) {
      if (s.orgId) reached.add(s.orgId);
      const p = drainStream(ctx, s, { windowMs: ctx.config.DRAIN_WINDOW_MS, startedBy: 'fanout' }).then((r) => void runs.push(r));
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
    // The minute cron also runs the job processor once.
    const p = processJobs(ctx).then((r) => void processorMs.push(r.durationMs));
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };
  const sent = new Map<string, { orgId: string; at: number }>();
  const started = performance.now();
  let trafficDone = false;
  let trafficS = 0;
  const trafficRun = traffic(o.appClient.db(dbName), orgs, o.ratePerSec, o.trafficMs, sent).then((s) => {
    trafficS = s;
    trafficDone = true;
  });
  let afterTraffic = 0;
  for (;;) {
    const at = performance.now();
    await tickOnce();
    if (trafficDone) afterTraffic++;
    if (trafficDone && afterTraffic > o.settleTicks) break;
    const rest = o.tickMs - (performance.now() - at);
    if (rest > 0) await new Promise((r) => setTimeout(r, rest));
  }
  await trafficRun;
  o.log(`    collection ${n}: ${ticks} ticks run; waiting for the last drains`);
  while (inFlight.size) await Promise.all([...inFlight]);
  const wallMs = performance.now() - started;
  cursors.stop();

  const jobs = await jobsBySubmission(db);
  const r = outcome(sent, jobs, sink);
  await sink.close();
  const events = runs.reduce((a, x) => a + x.events, 0);
  const drainS = runs.reduce((a, x) => a + x.durationMs, 0) / 1000;
  const fnS = drainS + processorMs.reduce((a, b) => a + b, 0) / 1000 + tickMs.reduce((a, b) => a + b, 0) / 1000;
  const toTicks = (ms: number | null) => (ms === null ? null : round(ms / o.tickMs, 2));
  const jobP50Ticks = toTicks(r.p(r.toJob, 50));
  const jobP99Ticks = toTicks(r.p(r.toJob, 99));
  const rotation = Math.ceil(n / ctx.config.MAX_CONCURRENT_DRAINS);
  return {
    layout: 'collection',
    organizations: n,
    partitions: null,
    submissions: sent.size,
    achievedRatePerSec: round(sent.size / trafficS, 1),
    insertToJob: { p50Ms: r.p(r.toJob, 50), p99Ms: r.p(r.toJob, 99) },
    insertToWebhook: { p50Ms: r.p(r.toHook, 50), p99Ms: r.p(r.toHook, 99) },
    ticks: {
      tickMs: o.tickMs,
      ran: ticks,
      jobP50Ticks,
      jobP99Ticks,
      projectedJobP50Min: jobP50Ticks,
      projectedJobP99Min: jobP99Ticks,
      projectedRotationTicks: rotation,
      projectedFullRotationMin: rotation,
      organizationsReached: reached.size,
    },
    // One tick is one real minute: per-tick sums are per-minute figures at the real cadence.
    invocationsPerMin: round((runs.length + processorMs.length + ticks) / ticks, 1),
    functionSecondsPerMin: round(fnS / ticks, 1),
    maxOpenCursors: cursors.max,
    baselineCursors,
    roundTripsPerEvent: events ? round(runs.reduce((a, x) => a + x.roundTrips, 0) / events, 3) : null,
    ...losses(r),
    seedMs: round(seedMs, 0),
    wallMs: round(wallMs, 0),
  };
}

/** Lost and duplicated counts of one layout's run, as the figures report them. */
function losses(r: ReturnType<typeof outcome>) {
  return { withoutJob: r.withoutJob, withoutDelivery: r.withoutDelivery, duplicatedJobs: r.duplicatedJobs, duplicatedDeliveries: r.duplicatedDeliveries };
}

/** (b) The database layout: P partitions relayed continuously in-process, jobs kicked at once. */
async function runDatabase(o: ScaleOptions, n: number, partitions: number): Promise<LayoutFigures> {
  const dbName = `${o.dbPrefix}_d${n}p${partitions}`;
  const { db, sink, orgs, seedMs } = await seedLayout(o, dbName, n);
  const processorMs: number[] = [];
  let ctxRef: AppContext | null = null;
  const runJobsNow = singleFlightRuns(
    () => processJobs(ctxRef!).then((r) => void processorMs.push(r.durationMs)),
    (error) => o.log(`    processor run failed: ${String(error)}`),
  );
  const ctx = await context(o, db, { STREAM_LAYOUT: 'database', STREAM_PARTITIONS: String(partitions), RELAY: 'continuous' }, runJobsNow);
  ctxRef = ctx;
  const cursors = new CursorPoller(o.appClient);
  const baselineCursors = await cursors.read();
  cursors.start();

  const windows: DrainSummary[] = [];
  const started = performance.now();
  const relay = startRelayRunners(ctx, partitionStreams(partitions), { onWindow: (w) => void windows.push(w.run) });
  // Warm-up: the traffic starts once the relay has served a first submission (each partition's
  // first window first looks back to when the first workflow became active; a cold start is not the
  // steady state this section measures). The warm-up submission is not counted.
  const warm = new ObjectId();
  await o.appClient.db(dbName).collection<SubmissionDoc>(submissionsCollection(orgs[0]!)).insertOne(submission(orgs[0]!, -1, warm));
  const warmBy = Date.now() + 60_000;
  while (Date.now() < warmBy && !(await db.collection(COLLECTIONS.jobs).findOne({ submissionId: warm.toHexString() }))) await new Promise((r) => setTimeout(r, 100));
  o.log(`    relay warm after ${Math.round(performance.now() - started)} ms`);
  const sent = new Map<string, { orgId: string; at: number }>();
  const trafficS = await traffic(o.appClient.db(dbName), orgs, o.ratePerSec, o.trafficMs, sent);
  // Settle: poll until every submission's webhook arrived, or the bound.
  const settleBy = Date.now() + o.settleMs;
  while (Date.now() < settleBy) {
    const jobs = await jobsBySubmission(db);
    jobs.delete(warm.toHexString());
    if (outcome(sent, jobs, sink).withoutDelivery === 0) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const wallMs = performance.now() - started;
  await relay.stop();
  cursors.stop();
  while (processorMs.length === 0 && sent.size > 0 && Date.now() < settleBy) await new Promise((r) => setTimeout(r, 100));

  const jobs = await jobsBySubmission(db);
  const r = outcome(sent, jobs, sink);
  await sink.close();
  const gaps = (
    await db
      .collection<CheckpointDoc>(COLLECTIONS.checkpoints)
      .find({ _id: { $in: partitionStreams(partitions).map((s) => s.id) } }, { projection: { 'relay.gaps': 1 } })
      .toArray()
  )
    .flatMap((c) => c.relay?.gaps ?? [])
    .sort((a, b) => a - b);
  const events = windows.reduce((a, x) => a + x.events, 0);
  const minutes = wallMs / 60_000;
  // Windows still open at the stop count with the time they had run.
  const fnS = windows.reduce((a, x) => a + x.durationMs, 0) / 1000 + processorMs.reduce((a, b) => a + b, 0) / 1000;
  return {
    layout: 'database',
    organizations: n,
    partitions,
    submissions: sent.size,
    achievedRatePerSec: round(sent.size / trafficS, 1),
    insertToJob: { p50Ms: r.p(r.toJob, 50), p99Ms: r.p(r.toJob, 99) },
    insertToWebhook: { p50Ms: r.p(r.toHook, 50), p99Ms: r.p(r.toHook, 99) },
    invocationsPerMin: round((windows.length + processorMs.length) / minutes, 1),
    functionSecondsPerMin: round(fnS / minutes, 1),
    maxOpenCursors: cursors.max,
    baselineCursors,
    roundTripsPerEvent: events ? round(windows.reduce((a, x) => a + x.roundTrips, 0) / events, 3) : null,
    handoverGapsMs: { count: gaps.length, p50: gaps.length ? gaps[Math.ceil(gaps.length / 2) - 1]! : null, max: gaps.length ? gaps[gaps.length - 1]! : null },
    ...losses(r),
    seedMs: round(seedMs, 0),
    wallMs: round(wallMs, 0),
  };
}

/** Run every (layout, N, P) of the section; the databases it made are dropped afterwards. */
export async function runScale(base: ScaleOptions): Promise<LayoutFigures[]> {
  const out: LayoutFigures[] = [];
  // In production every drain is its own function with its own connection; in this one process the
  // collection layout's MAX_CONCURRENT_DRAINS parallel drains (each holding a connection for its
  // awaitData getMore) get a pool that large, so the pool is not what limits them.
  const client = new MongoClient(base.uri, { maxPoolSize: 120, serverSelectionTimeoutMS: 10_000 });
  await client.connect();
  const o = { ...base, client };
  try {
    const layouts = o.layouts ?? ['collection', 'database'];
    for (const n of o.orgCounts) {
      if (layouts.includes('collection')) {
        o.log(`  scale: collection layout, ${n} organizations, tick every ${o.tickMs} ms (real: 60 s)`);
        out.push(await runCollection(o, n));
        logFigures(o.log, out[out.length - 1]!);
      }
      for (const p of layouts.includes('database') ? o.partitions : []) {
        o.log(`  scale: database layout, ${n} organizations, P = ${p}, continuous relay in-process`);
        out.push(await runDatabase(o, n, p));
        logFigures(o.log, out[out.length - 1]!);
      }
    }
  } finally {
    const names = (await o.client.db('admin').admin().listDatabases({ nameOnly: true })).databases.map((d) => d.name).filter((d) => d.startsWith(`${o.dbPrefix}_`));
    await Promise.allSettled(names.map((d) => o.client.db(d).dropDatabase()));
    await client.close();
  }
  return out;
}

function logFigures(log: (l: string) => void, f: LayoutFigures): void {
  log(
    `    ${f.submissions} submissions: insert→job p50 ${f.insertToJob.p50Ms} / p99 ${f.insertToJob.p99Ms} ms, insert→webhook p50 ${f.insertToWebhook.p50Ms} / p99 ${f.insertToWebhook.p99Ms} ms, ` +
      `${f.invocationsPerMin} invocations/min, ${f.functionSecondsPerMin} function-s/min, cursors max ${f.maxOpenCursors} (baseline ${f.baselineCursors}), ` +
      (f.handoverGapsMs ? `handover gaps ${f.handoverGapsMs.count} (p50 ${f.handoverGapsMs.p50} / max ${f.handoverGapsMs.max} ms), ` : '') +
      `without job ${f.withoutJob}, without delivery ${f.withoutDelivery}, dup jobs ${f.duplicatedJobs}, dup deliveries ${f.duplicatedDeliveries}`,
  );
}

/** Target rows for the database layout at the largest N (issue targets), printed beside the figures. */
export function scaleTargets(figs: LayoutFigures[]) {
  const db = figs.filter((f) => f.layout === 'database');
  const maxN = Math.max(...db.map((f) => f.organizations));
  return db
    .filter((f) => f.organizations === maxN)
    .flatMap((f) => {
      const P = f.partitions ?? 1;
      const at = `${f.organizations} orgs, P=${P}`;
      const row = (name: string, value: number | null, target: string, met: boolean | null) => ({ name: `${name} (${at})`, value, target, met });
      return [
        row('insert→job p99 ms', f.insertToJob.p99Ms, '≤ 250', f.insertToJob.p99Ms !== null && f.insertToJob.p99Ms <= 250),
        row('insert→webhook p99 ms', f.insertToWebhook.p99Ms, '≤ 2000', f.insertToWebhook.p99Ms !== null && f.insertToWebhook.p99Ms <= 2000),
        row('change-stream cursors max', f.maxOpenCursors, `≤ ${P + 2}`, f.maxOpenCursors <= P + 2),
        row('function-s per minute', f.functionSecondsPerMin, `≤ ${(P + 1) * 60}`, f.functionSecondsPerMin <= (P + 1) * 60),
        row('lost (no job or no delivery)', f.withoutDelivery, '0', f.withoutDelivery === 0),
        row('duplicated jobs + deliveries', f.duplicatedJobs + f.duplicatedDeliveries, '0', f.duplicatedJobs + f.duplicatedDeliveries === 0),
      ];
    });
}
