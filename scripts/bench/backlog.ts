/**
 * Sections 4 and 5: a large backlog drained across bounded windows, each window a separate process
 * (one invocation), counting lost and duplicated jobs at the end; the peak memory of those
 * invocations is the memory figure.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Db, MongoClient } from 'mongodb';
import { drainStream } from '../../lib/drain/drain.js';
import { orgStream } from '../../lib/streams/refs.js';
import { perSecond, round, timedWithCpu } from './measure.js';
import { benchContext, countJobs, insertBacklog, seedWorkflow } from './setup.js';

export interface BacklogOptions {
  uri: string;
  client: MongoClient;
  db: Db;
  events: number;
  windowMs: number;
  /** Give up after this many windows (a stuck stream must not hang the bench). */
  maxWindows: number;
  backendCpuMs: () => number | null;
  log: (line: string) => void;
}

interface WindowReport {
  events: number;
  jobsCreated: number;
  duplicates: number;
  flushes: number;
  stoppedBy: string;
  status: string;
  busy: boolean;
  error: { code: string; message: string } | null;
  drainMs: number;
  baselineRssMB: number;
  baselineHeapMB: number;
  maxRssMB: number;
  heapPeakMB: number;
}

export interface BacklogResult {
  events: number;
  windowMs: number;
  /** Insert rate of the backlog itself (insertMany of 1000): the backend's raw write speed. */
  insertPerSec: number;
  windows: number;
  /** Events / time spent inside drain windows. */
  eventsPerSec: number;
  /** Events / wall time including starting one process per window. */
  wallEventsPerSec: number;
  jobsExpected: number;
  jobsFound: number;
  lost: number;
  duplicated: number;
  peakRssMB: number;
  peakHeapMB: number;
  baselineRssMB: number;
  /** Backend CPU / wall time over the catch-up (1 = one core busy); null if not observable. */
  backendBusy: number | null;
  perWindow: { events: number; drainMs: number; stoppedBy: string; maxRssMB: number; heapPeakMB: number }[];
}

const CHILD = fileURLToPath(new URL('./drain-child.ts', import.meta.url));

/** Product defaults except a short idle stop, so the last window does not sit idle for long. */
export const BACKLOG_ENV = { DRAIN_IDLE_MS: '1000' };

export async function runBacklog(o: BacklogOptions): Promise<BacklogResult> {
  const orgId = 'bench_backlog';
  const ctx = await benchContext(o.uri, o.client, o.db, { ...BACKLOG_ENV, DRAIN_IDLE_MS: '300' });
  await seedWorkflow(o.db, orgId);
  await drainStream(ctx, orgStream(orgId)); // token at now
  const { ids, ms: insertMs } = await insertBacklog(o.db, orgId, o.events);
  o.log(`  backlog of ${o.events.toLocaleString('en-US')} inserted at ${Math.round(perSecond(o.events, insertMs))}/s`);

  const windows: WindowReport[] = [];
  const wall = await timedWithCpu(o.backendCpuMs, async () => {
    let total = 0;
    while (total < o.events && windows.length < o.maxWindows) {
      const w = await runWindow({ uri: o.uri, dbName: o.db.databaseName, orgId, windowMs: o.windowMs, env: BACKLOG_ENV });
      windows.push(w);
      total += w.events;
      o.log(`  window ${windows.length}: ${w.events} events in ${Math.round(w.drainMs)} ms (${w.stoppedBy}), peak RSS ${w.maxRssMB.toFixed(0)} MB, heap ${w.heapPeakMB.toFixed(0)} MB`);
      if (w.status === 'failed') throw new Error(`window ${windows.length} failed: ${w.error?.code} ${w.error?.message}`);
      if (w.events === 0) break;
    }
  });
  const inWindowMs = windows.reduce((a, w) => a + w.drainMs, 0);
  const drained = windows.reduce((a, w) => a + w.events, 0);
  const jobs = await countJobs(o.db, orgId, ids);
  return {
    events: o.events,
    windowMs: o.windowMs,
    insertPerSec: round(perSecond(o.events, insertMs)),
    windows: windows.length,
    eventsPerSec: round(perSecond(drained, inWindowMs)),
    wallEventsPerSec: round(perSecond(drained, wall.ms)),
    jobsExpected: jobs.expected,
    jobsFound: jobs.found,
    lost: jobs.lost,
    duplicated: jobs.duplicated,
    peakRssMB: round(Math.max(...windows.map((w) => w.maxRssMB)), 1),
    peakHeapMB: round(Math.max(...windows.map((w) => w.heapPeakMB)), 1),
    baselineRssMB: round(Math.max(...windows.map((w) => w.baselineRssMB)), 1),
    backendBusy: wall.busy,
    perWindow: windows.map((w) => ({ events: w.events, drainMs: round(w.drainMs), stoppedBy: w.stoppedBy, maxRssMB: round(w.maxRssMB, 1), heapPeakMB: round(w.heapPeakMB, 1) })),
  };
}

function runWindow(args: { uri: string; dbName: string; orgId: string; windowMs: number; env: Record<string, string> }): Promise<WindowReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line) return reject(new Error(`drain process exited with ${code}: ${err.slice(-2000)}`));
      try {
        resolve(JSON.parse(line) as WindowReport);
      } catch (error) {
        reject(error);
      }
    });
  });
}
