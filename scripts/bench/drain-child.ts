/**
 * One drain invocation in its own process, as a serverless function instance would run it, so that
 * its memory can be measured alone. Argument: JSON `{uri, dbName, orgId, windowMs, env}`.
 * Prints one JSON line: what the run did, its in-window time, peak RSS (process.resourceUsage().maxRSS)
 * and the peak of heapUsed sampled every 5 ms during the drain.
 */
import { MongoClient } from 'mongodb';
import { drainStream } from '../../lib/drain/drain.js';
import { orgStream } from '../../lib/streams/refs.js';
import { benchContext } from './setup.js';

interface Args {
  uri: string;
  dbName: string;
  orgId: string;
  windowMs: number;
  env: Record<string, string>;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const client = new MongoClient(args.uri, { maxPoolSize: 10, serverSelectionTimeoutMS: 10_000 });
await client.connect();
try {
  const ctx = await benchContext(args.uri, client, client.db(args.dbName), args.env);
  const baseline = process.memoryUsage();
  let heapPeak = baseline.heapUsed;
  // Sampling only observes; it never delays the drain (an unref'd interval on the same loop).
  const sampler = setInterval(() => {
    heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
  }, 5);
  sampler.unref();
  const t0 = performance.now();
  const run = await drainStream(ctx, orgStream(args.orgId), { windowMs: args.windowMs, startedBy: 'continuation' });
  const drainMs = performance.now() - t0;
  clearInterval(sampler);
  heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
  process.stdout.write(
    `${JSON.stringify({
      events: run.events,
      jobsCreated: run.jobsCreated,
      duplicates: run.duplicates,
      flushes: run.flushes,
      stoppedBy: run.stoppedBy,
      status: run.status,
      busy: run.busy,
      error: run.error,
      drainMs,
      baselineRssMB: baseline.rss / 2 ** 20,
      baselineHeapMB: baseline.heapUsed / 2 ** 20,
      maxRssMB: process.resourceUsage().maxRSS / 1024,
      heapPeakMB: heapPeak / 2 ** 20,
    })}\n`,
  );
} finally {
  await client.close();
}
