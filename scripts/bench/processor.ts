/**
 * Section 6: the job processor against a local webhook sink (a separate process), against a bare
 * HTTP POST loop with the same concurrency, the same sink and a body of the same size.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ObjectId, type Db, type MongoClient } from 'mongodb';
import { processJobs } from '../../lib/jobs/process.js';
import { webhookPayload } from '../../lib/jobs/webhook.js';
import type { ProcessedJobDoc } from '../../lib/data/documents.js';
import { COLLECTIONS } from '../../lib/data/mongo.js';
import { CommandCounter, perSecond, round, timedWithCpu } from './measure.js';
import { processCpuMs } from './backend.js';
import { benchContext, submission } from './setup.js';

export interface ProcessorOptions {
  uri: string;
  client: MongoClient;
  /** A database of its own: the processor claims from the whole `workflow_jobs` collection. */
  db: Db;
  jobs: number;
  concurrency: number;
  backendCpuMs: () => number | null;
  log: (line: string) => void;
}

export interface ProcessorResult {
  jobs: number;
  concurrency: number;
  processorMs: number;
  processorJobsPerSec: number;
  bareMs: number;
  barePostsPerSec: number;
  ratio: number;
  invocations: number;
  succeeded: number;
  sinkRequests: number;
  sinkDistinctKeys: number;
  bodyBytes: number;
  /** MongoDB commands of the processor runs, and the time the driver waited for each kind (ms, summed). */
  commands: Record<string, number>;
  commandMs: Record<string, number>;
  /** Backend CPU / wall time while the processor ran (1 = one core busy); null if not observable. */
  backendBusy: number | null;
  /** CPU / wall time of this process (where the processor runs) and of the sink, during each loop. */
  cpu: { processor: { self: number; sink: number | null }; bare: { self: number; sink: number | null } };
  /** MongoDB commands per job the processor sent (driver command monitoring). */
  roundTripsPerJob: number;
  /** Webhooks the processor sent beyond one per job (the sink's count, warm-up and bare loop excluded). */
  duplicateDeliveries: number;
}

const WARM_POSTS = 3_000;
const SINK = fileURLToPath(new URL('./sink.ts', import.meta.url));

export async function runProcessor(o: ProcessorOptions): Promise<ProcessorResult> {
  const sink = await startSink();
  try {
    const hook = `${sink.url}/hook`;
    const ctx = await benchContext(o.uri, o.client, o.db, {
      JOB_CONCURRENCY: String(o.concurrency),
      WEBHOOK_SIGNING_SECRET: randomBytes(24).toString('base64url'),
    });
    const now = new Date();
    const jobs = Array.from({ length: o.jobs }, (_, i) => newJob(i, hook, now));
    await o.db.collection<ProcessedJobDoc>(COLLECTIONS.jobs).insertMany(jobs);
    const body = JSON.stringify(webhookPayload(jobs[0]!, 1));

    // Warm the client, the sink and their connections (JIT, keep-alive pools) before timing: the
    // first thousand requests run measurably slower than the later ones on both sides.
    await barePosts(`${sink.url}/warm`, body, o.concurrency, WARM_POSTS);

    const selfCpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
    const bareSelf = selfCpu();
    const bareSink = sink.cpuMs();
    const bare = await timedWithCpu(o.backendCpuMs, () => barePosts(`${sink.url}/bare`, body, o.concurrency, o.jobs));
    const bareCpu = { self: round((selfCpu() - bareSelf) / bare.ms, 2), sink: busy(bareSink, sink.cpuMs(), bare.ms) };
    const procSelf = selfCpu();
    const procSink = sink.cpuMs();
    let invocations = 0;
    let succeeded = 0;
    const counter = new CommandCounter(o.client, o.db.databaseName);
    counter.start();
    const proc = await timedWithCpu(o.backendCpuMs, async () => {
      for (let i = 0; i < 20; i++) {
        const s = await processJobs(ctx, { concurrency: o.concurrency, windowMs: 52_000 });
        invocations++;
        succeeded += s.succeeded;
        if (!s.moreDue) break;
      }
    });
    const procCpu = { self: round((selfCpu() - procSelf) / proc.ms, 2), sink: busy(procSink, sink.cpuMs(), proc.ms) };
    const commands = counter.stop();
    counter.dispose();
    const stats = await (await fetch(`${sink.url}/stats`)).json() as { requests: number; distinctKeys: number };
    return {
      jobs: o.jobs,
      concurrency: o.concurrency,
      processorMs: round(proc.ms, 1),
      processorJobsPerSec: round(perSecond(succeeded, proc.ms)),
      bareMs: round(bare.ms, 1),
      barePostsPerSec: round(perSecond(o.jobs, bare.ms)),
      ratio: round(bare.ms / proc.ms, 3),
      invocations,
      succeeded,
      sinkRequests: stats.requests,
      sinkDistinctKeys: stats.distinctKeys,
      bodyBytes: Buffer.byteLength(body),
      commands: commands.byCommand,
      commandMs: commands.msByCommand,
      backendBusy: proc.busy,
      cpu: { processor: procCpu, bare: bareCpu },
      roundTripsPerJob: round(commands.total / Math.max(1, succeeded), 3),
      duplicateDeliveries: stats.requests - WARM_POSTS - o.jobs - stats.distinctKeys,
    };
  } finally {
    await sink.stop();
  }
}

/** `n` POSTs of `body`, `concurrency` at a time, each answer read to the end. */
async function barePosts(url: string, body: string, concurrency: number, n: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await res.arrayBuffer();
        if (!res.ok) throw new Error(`sink answered ${res.status}`);
      }
    }),
  );
}

/** A queued webhook job to `url`, due at `at`, shaped like the drain's. */
export function newJob(i: number, url: string, at: Date): ProcessedJobDoc {
  const sub = submission('bench_jobs', i);
  const submissionId = (sub._id as ObjectId).toHexString();
  return {
    _id: new ObjectId(),
    key: `wf_bench:${submissionId}:insert`,
    organizationId: 'bench_jobs',
    workflowId: 'wf_bench',
    workflowName: 'Notify',
    formId: 'contact',
    submissionId,
    source: 'org:bench_jobs',
    event: 'insert',
    createdBy: 'change_stream',
    seenBy: ['change_stream'],
    status: 'queued',
    attempts: 0,
    runAt: at,
    lease: null,
    lastError: null,
    steps: [{ type: 'webhook', url }],
    submission: sub,
    eventClusterTime: null,
    eventWallTime: null,
    createdAt: at,
    updatedAt: at,
  };
}

function busy(c0: number | null, c1: number | null, ms: number): number | null {
  return c0 === null || c1 === null ? null : round((c1 - c0) / ms, 2);
}

/** Start the webhook sink process (sink.ts); `cpuMs` observes it on Linux. */
export async function startSink(): Promise<{ url: string; cpuMs(): number | null; stop(): Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', SINK], { stdio: ['pipe', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`webhook sink exited (${code})`)));
    createInterface({ input: child.stdout! }).once('line', resolve);
  });
  return {
    url,
    cpuMs: () => (child.pid ? processCpuMs(child.pid) : null),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.stdin?.end();
        child.kill('SIGTERM');
      }),
  };
}
