/**
 * Section 7: a sustained offered load. Jobs are queued at a fixed rate (1,000/s by default, in
 * ticks of 50 ms, by a separate client, as the drain would write them) for a fixed time, while
 * the processor runs as the deployment runs it: `processJobsAndContinue` (JOB_PARALLELISM lanes in
 * process, no QStash), started again as soon as a run ends. It keeps up when it completes jobs as
 * fast as they are offered and the backlog does not grow.
 */
import { randomBytes } from 'node:crypto';
import type { Db, MongoClient } from 'mongodb';
import { processJobsAndContinue } from '../../lib/fanout/continuation.js';
import { dueFilter } from '../../lib/jobs/claim.js';
import type { ProcessedJobDoc } from '../../lib/data/documents.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { CommandCounter, percentile, perSecond, round } from './measure.js';
import { newJob, startSink } from './processor.js';
import { benchContext } from './setup.js';

export interface SustainedOptions {
  uri: string;
  /** The processor's client (command monitoring on). */
  client: MongoClient;
  /** The producer's client, as the drain's would be. */
  appClient: MongoClient;
  dbName: string;
  ratePerSec: number;
  durationMs: number;
  concurrency: number;
  parallelism: number;
  backendCpuMs: () => number | null;
  log: (line: string) => void;
}

export interface SustainedResult {
  offeredPerSec: number;
  durationMs: number;
  concurrency: number;
  parallelism: number;
  queued: number;
  succeeded: number;
  /** Jobs completed / time from the first job queued to the last one finished. */
  completedPerSec: number;
  /** Time after the last job was queued until every job was finished, ms. */
  tailMs: number;
  /** Queued → finished (finishedAt − runAt), ms. */
  lagMs: { p50: number; p95: number; p99: number; max: number };
  /** Largest number of due jobs seen (sampled every 250 ms). */
  maxBacklog: number;
  /** Processor runs (leads) started, and lanes they added. */
  runs: number;
  lanes: number;
  roundTripsPerJob: number;
  commands: Record<string, number>;
  commandMs: Record<string, number>;
  /** CPU / wall time over the run: this process (processor), the sink, the backend. */
  cpu: { processor: number; sink: number | null; backend: number | null };
  sinkRequests: number;
  sinkDistinctKeys: number;
}

export async function runSustained(o: SustainedOptions): Promise<SustainedResult> {
  const sink = await startSink();
  const db: Db = o.client.db(`${o.dbName}_sustained`);
  const producerDb = o.appClient.db(db.databaseName);
  try {
    const hook = `${sink.url}/hook`;
    const ctx = await benchContext(o.uri, o.client, db, {
      JOB_CONCURRENCY: String(o.concurrency),
      JOB_PARALLELISM: String(o.parallelism),
      JOB_WINDOW_MS: '10000',
      WEBHOOK_SIGNING_SECRET: randomBytes(24).toString('base64url'),
    });
    const jobs = producerDb.collection<ProcessedJobDoc>(COLLECTIONS.jobs);

    const counter = new CommandCounter(o.client, db.databaseName);
    const selfCpu = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    const c0 = { self: selfCpu(), sink: sink.cpuMs(), backend: o.backendCpuMs() };
    counter.start();
    const t0 = performance.now();

    // Producer: `tick` ms apart, the jobs due by then, each stamped with the time it was queued.
    const tickMs = 50;
    let queued = 0;
    let producing = true;
    let producedAt = 0;
    const producer = (async () => {
      for (let tick = 1; performance.now() - t0 < o.durationMs; tick++) {
        const target = Math.min(Math.round((o.ratePerSec * Math.min(performance.now() - t0, o.durationMs)) / 1000), Math.round((o.ratePerSec * o.durationMs) / 1000));
        const batch = Array.from({ length: Math.max(0, target - queued) }, (_, i) => newJob(queued + i, hook, new Date()));
        if (batch.length) await jobs.insertMany(batch, { ordered: false });
        queued += batch.length;
        const wait = t0 + tick * tickMs - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      producing = false;
      producedAt = performance.now();
    })();

    let maxBacklog = 0;
    const sampler = setInterval(() => {
      void jobs.countDocuments(dueFilter(new Date(), 5)).then((n) => (maxBacklog = Math.max(maxBacklog, n)), () => undefined);
    }, 250);

    let runs = 0;
    let lanes = 0;
    let succeeded = 0;
    for (;;) {
      const r = await processJobsAndContinue(ctx);
      runs++;
      lanes += r.scaleOut?.lanes ?? 0;
      succeeded += r.summary.succeeded + (r.scaleOut?.runs ?? []).reduce((n, l) => n + l.succeeded, 0);
      if (!producing && succeeded >= queued) break;
      if (r.summary.claimed === 0) await new Promise((res) => setTimeout(res, 10)); // nothing due yet
      if (performance.now() - t0 > o.durationMs + 120_000) throw new Error(`sustained load: ${queued - succeeded} jobs still open 2 minutes after the last was queued`);
    }
    await producer;
    const endMs = performance.now();
    clearInterval(sampler);
    const wallMs = endMs - t0;
    const cpu = {
      processor: round((selfCpu() - c0.self) / wallMs, 2),
      sink: c0.sink === null ? null : round(((sink.cpuMs() ?? 0) - c0.sink) / wallMs, 2),
      backend: c0.backend === null ? null : round(((o.backendCpuMs() ?? 0) - c0.backend) / wallMs, 2),
    };
    const commands = counter.stop();
    counter.dispose();

    const lags: number[] = [];
    for await (const j of jobs.find({ status: 'succeeded' }, { projection: { runAt: 1, finishedAt: 1 } })) {
      if (j.finishedAt) lags.push(j.finishedAt.getTime() - j.runAt.getTime());
    }
    lags.sort((a, b) => a - b);
    const stats = (await (await fetch(`${sink.url}/stats`)).json()) as { requests: number; distinctKeys: number };
    return {
      offeredPerSec: o.ratePerSec,
      durationMs: o.durationMs,
      concurrency: o.concurrency,
      parallelism: o.parallelism,
      queued,
      succeeded,
      completedPerSec: round(perSecond(succeeded, wallMs)),
      tailMs: round(endMs - producedAt),
      lagMs: { p50: round(percentile(lags, 50), 1), p95: round(percentile(lags, 95), 1), p99: round(percentile(lags, 99), 1), max: round(lags.at(-1) ?? Number.NaN, 1) },
      maxBacklog,
      runs,
      lanes,
      roundTripsPerJob: round(commands.total / Math.max(1, succeeded), 3),
      commands: commands.byCommand,
      commandMs: commands.msByCommand,
      cpu,
      sinkRequests: stats.requests,
      sinkDistinctKeys: stats.distinctKeys,
    };
  } finally {
    await db.dropDatabase().catch(() => undefined);
    await sink.stop();
  }
}

