/**
 * Section 3: insert → job latency while a drain window is open, at a steady submission rate.
 *
 * Measured, per submission, on the bench's own clock (performance.now(), one process):
 *   start = just before the application's `insertOne` of the submission is sent;
 *   end   = when the job bulk write that contains the submission's job is acknowledged by MongoDB
 *           (the job is durable and visible to any reader from then on).
 * So the figure includes the insert round trip, the change-stream wake-up, planning and the job
 * write. The end is observed by wrapping the context's `workflow_jobs.bulkWrite` (the drain itself
 * is unchanged).
 */
import { ObjectId, type Db, type MongoClient } from 'mongodb';
import type { AppContext } from '../../lib/platform/context.js';
import { drainStream } from '../../lib/drain/drain.js';
import { COLLECTIONS, submissionsCollection } from '../../lib/data/mongo.js';
import { orgStream } from '../../lib/streams/refs.js';
import type { SubmissionDoc } from '../../lib/data/documents.js';
import { nextCommand, percentile, round } from './measure.js';
import { benchContext, countJobs, seedWorkflow, submission } from './setup.js';

export interface LatencyOptions {
  uri: string;
  /** Client the drain runs on; created with `monitorCommands: true`. */
  client: MongoClient;
  /** The application's own client for the inserts. */
  appClient: MongoClient;
  dbName: string;
  ratePerSec: number;
  durationMs: number;
}

export interface LatencyResult {
  measured: string;
  targetRatePerSec: number;
  achievedRatePerSec: number;
  submissions: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Same submissions, `job.createdAt − submission.submittedAt` (both wall clock, 1 ms resolution). */
  createdAtP99Ms: number;
  flushes: number;
  lost: number;
  duplicated: number;
}

export const LATENCY_MEASURED =
  'per submission: bench clock just before insertOne is sent → acknowledgement of the job bulk write that contains its job (both performance.now() in one process)';

export async function runLatency(o: LatencyOptions): Promise<LatencyResult> {
  const db = o.client.db(o.dbName);
  const appDb = o.appClient.db(o.dbName);
  const orgId = 'bench_latency';
  const count = Math.round((o.ratePerSec * o.durationMs) / 1000);
  const acked = new Map<string, number>();
  const ctx = await benchContext(o.uri, o.client, instrumentJobWrites(db, acked), {
    DRAIN_IDLE_MS: '60000',
    DRAIN_MAX_EVENTS: String(count),
  });
  const wf = await seedWorkflow(db, orgId);
  await drainStream({ ...ctx, config: { ...ctx.config, DRAIN_IDLE_MS: 300 } }, orgStream(orgId)); // token at now

  const coll = submissionsCollection(orgId);
  const opened = nextCommand(o.client, (e) => e.commandName === 'aggregate' && e.databaseName === o.dbName);
  const drain = drainStream(ctx, orgStream(orgId), { windowMs: Math.min(52_000, o.durationMs + 20_000), startedBy: 'manual' });
  await opened; // the window is open: its change stream exists

  const sentAt = new Map<string, number>();
  const ids: string[] = [];
  const inserts: Promise<unknown>[] = [];
  const startedAt = performance.now();
  for (let i = 0; i < count; i++) {
    // Pace to a steady rate: wait for this submission's slot on the schedule, however late we are.
    const due = startedAt + (i * 1000) / o.ratePerSec;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const id = new ObjectId();
    ids.push(id.toHexString());
    sentAt.set(id.toHexString(), performance.now());
    inserts.push(appDb.collection<SubmissionDoc>(coll).insertOne(submission(orgId, i, id)));
  }
  await Promise.all(inserts);
  const writerMs = performance.now() - startedAt;
  const run = await drain;

  const latencies: number[] = [];
  for (const id of ids) {
    const end = acked.get(`${String(wf._id)}:${id}:insert`);
    if (end !== undefined) latencies.push(end - sentAt.get(id)!);
  }
  latencies.sort((a, b) => a - b);
  const jobs = await countJobs(db, orgId, ids);
  const wall = await db
    .collection(COLLECTIONS.jobs)
    .find({ organizationId: orgId }, { projection: { _id: 0, createdAt: 1, 'submission.submittedAt': 1 } })
    .toArray();
  const wallSorted = wall.map((j) => (j.createdAt as Date).getTime() - (j.submission.submittedAt as Date).getTime()).sort((a, b) => a - b);
  return {
    measured: LATENCY_MEASURED,
    targetRatePerSec: o.ratePerSec,
    achievedRatePerSec: round((count * 1000) / writerMs, 1),
    submissions: count,
    p50Ms: round(percentile(latencies, 50), 2),
    p95Ms: round(percentile(latencies, 95), 2),
    p99Ms: round(percentile(latencies, 99), 2),
    maxMs: round(latencies[latencies.length - 1] ?? Number.NaN, 2),
    createdAtP99Ms: percentile(wallSorted, 99),
    flushes: run.flushes,
    lost: jobs.lost,
    duplicated: jobs.duplicated,
  };
}

/**
 * A Db whose `workflow_jobs.bulkWrite` records, for every job key it carries, the moment the write
 * was acknowledged. Everything else passes through untouched.
 */
function instrumentJobWrites(db: Db, acked: Map<string, number>): Db {
  return new Proxy(db, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== 'collection') return typeof value === 'function' ? value.bind(target) : value;
      return (name: string, ...rest: unknown[]) => {
        const coll = (value as (...a: unknown[]) => ReturnType<Db['collection']>).call(target, name, ...rest);
        if (name !== COLLECTIONS.jobs) return coll;
        return new Proxy(coll, {
          get(c, p, r) {
            const v = Reflect.get(c, p, r);
            if (p !== 'bulkWrite') return typeof v === 'function' ? v.bind(c) : v;
            return async (ops: { updateOne?: { filter: { key?: string } } }[], options?: unknown) => {
              const result = await (v as (...a: unknown[]) => Promise<unknown>).call(c, ops, options);
              const at = performance.now();
              for (const op of ops) if (op.updateOne?.filter.key) acked.set(op.updateOne.filter.key, at);
              return result;
            };
          },
        });
      };
    },
  });
}
