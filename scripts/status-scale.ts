/**
 * Server time of the status dashboard with many organizations:
 *
 *   npx tsx scripts/status-scale.ts [--orgs 10000] [--rounds 5] [--layout collection|database] [--uri mongodb://…]
 *
 * Seeds one database with N organizations (an active workflow each; in the `collection` layout an
 * `org:` checkpoint each with a varied lag and a recent run, in the `database` layout 16 partition
 * checkpoints; a few hundred jobs, some dead), then times `GET /api/status` (the route handler
 * itself: reading the status model and rendering one page of the dashboard) several times and
 * prints the median and the slowest, split into reading and rendering. The MongoDB is the project
 * emulator in a child process unless --uri names one. Speed is shown here, never asserted in a test.
 * `STATUS_SCALE_PROFILE=1` also times the status model's queries one by one; `STATUS_SCALE_MODE=dual`
 * puts every organization in dual mode (the dual-run aggregation then covers all of them).
 */
import { parseArgs } from 'node:util';
import { ObjectId } from 'mongodb';
import * as status from '../api/status.js';
import { benchTarget } from '../dev/mongo/bench-target.js';
import { loadConfig } from '../lib/platform/config.js';
import { buildContext, provideContext } from '../lib/platform/context.js';
import { silentLogger } from '../lib/platform/log.js';
import { COLLECTIONS, closeMongoClients } from '../lib/data/mongo.js';
import { readStatus } from '../lib/status/report.js';
import { renderHtml } from '../lib/status/html.js';

const { values: opt } = parseArgs({ options: { orgs: { type: 'string', default: '10000' }, rounds: { type: 'string', default: '5' }, layout: { type: 'string', default: 'collection' }, uri: { type: 'string' } } });
if (opt.layout !== 'collection' && opt.layout !== 'database') throw new Error('--layout must be collection or database');
const LAYOUT = opt.layout;
const PARTITIONS = 16;
const N = Number(opt.orgs);
const ROUNDS = Number(opt.rounds);
const target = await benchTarget('status_scale');
const db = target.db;
const now = Date.now();
const org = (i: number) => `o${String(i).padStart(5, '0')}`;

const t0 = performance.now();
const BATCH = 2_000;
for (let start = 0; start < N; start += BATCH) {
  const ids = Array.from({ length: Math.min(BATCH, N - start) }, (_, k) => start + k);
  await db.collection(COLLECTIONS.workflows).insertMany(ids.map((i) => ({ _id: `wf-${org(i)}` as never, organizationId: org(i), formId: 'f', name: `Notify ${org(i)}`, status: 'active', steps: [], updatedAt: new Date(now) })));
  if (LAYOUT === 'collection') await db.collection(COLLECTIONS.checkpoints).insertMany(
    ids.map((i) => {
      const startedAt = new Date(now - 30_000 - (i % 60) * 1_000);
      const lastRun = { runId: `r${i}`, streamId: `org:${org(i)}`, status: 'completed', stoppedBy: i % 10 === 0 ? 'deadline' : 'idle', trigger: 'qstash', events: i % 7, jobsCreated: i % 7, duplicates: 0, deadLettered: 0, flushes: 1, roundTrips: 3, reconnects: 0, recoveries: [], tokenBefore: null, tokenAfter: null, busy: false, latencyMsAvg: 20, latencyMsMax: 40, startedAt, endedAt: new Date(startedAt.getTime() + 3_000), durationMs: 3_000, error: null };
      return { _id: `org:${org(i)}` as never, orgId: org(i), token: { _data: '82' }, tokenIsInvalidate: false, tokenTime: new Date(now - 5_000 - (i % 997) * 100), tokenSavedAt: new Date(now - 2_000), fence: 1, lease: null, state: i % 500 === 3 ? 'failing' : 'idle', consecutiveFailures: i % 500 === 3 ? 3 : 0, lastRun, lastEventWallTime: null, gaps: [], gapCount: 0, recovery: null, createdAt: new Date(now - 86_400_000), updatedAt: new Date(now) };
    }),
  );
}
if (LAYOUT === 'database') {
  await db.collection(COLLECTIONS.checkpoints).insertMany(
    Array.from({ length: PARTITIONS }, (_, p) => ({ _id: `partition:${p}/${PARTITIONS}` as never, orgId: null, token: { _data: '82' }, tokenIsInvalidate: false, tokenTime: new Date(now - 500 - p * 10), tokenSavedAt: new Date(now - 500), fence: 1, lease: { owner: 'relay', expiresAt: new Date(now + 60_000) }, state: 'draining', consecutiveFailures: 0, lastRun: null, lastEventWallTime: null, gaps: [], gapCount: 0, recovery: null, relay: { generation: 40 + p, live: true, handoverAt: null, lastPublishedAt: new Date(now - 20_000), releasedAt: null, lastGapMs: 120, gaps: [100, 120, 140], restarts: 0, lastRestartAt: null }, createdAt: new Date(now - 86_400_000), updatedAt: new Date(now) })),
  );
}
const runs = Array.from({ length: 3_000 }, (_, i) => {
  const startedAt = new Date(now - (i % 30) * 60_000 - 10_000);
  return { _id: new ObjectId(), runId: `x${i}`, streamId: `org:${org(i % N)}`, status: 'completed', stoppedBy: 'idle', events: 5, jobsCreated: 5, latencyMsAvg: 30, latencyMsMax: 80, startedAt, endedAt: new Date(startedAt.getTime() + 3_000), durationMs: 3_000 };
});
await db.collection(COLLECTIONS.runs).insertMany(runs);
await db.collection(COLLECTIONS.jobs).insertMany(
  Array.from({ length: 500 }, (_, i) => ({ key: `wf-${org(i)}:s${i}:insert`, organizationId: org(i), workflowId: `wf-${org(i % 20)}`, workflowName: 'Notify', status: i % 5 === 0 ? 'dead' : i % 5 === 1 ? 'queued' : 'succeeded', attempts: i % 5 === 0 ? 5 : 1, runAt: new Date(now - 60_000), lastError: i % 5 === 0 ? { code: 'webhook_rejected', message: 'webhook answered 404', retryable: false, at: new Date(now) } : null, createdAt: new Date(now - 120_000), finishedAt: i % 5 === 1 ? null : new Date(now - 30_000), eventWallTime: new Date(now - 119_000) })),
);
const seededMs = performance.now() - t0;

const config = loadConfig({ MONGODB_URI: 'mongodb://unused', MONGODB_DB: db.databaseName, USE_CHANGE_STREAMS: 'true', CHANGE_STREAMS_ALL_ORGS: 'true', TRIGGER_MODE: process.env.STATUS_SCALE_MODE ?? 'change_streams', STREAM_LAYOUT: LAYOUT, STREAM_PARTITIONS: String(PARTITIONS), ADMIN_TOKEN: 'status-scale-admin-token', LOG_LEVEL: 'silent' });
const ctx = await buildContext(config, { client: target.client, db, log: silentLogger, publisher: null });
provideContext(ctx);

if (process.env.STATUS_SCALE_PROFILE) {
  const { jobMetrics } = await import('../lib/jobs/metrics.js');
  const { recentThroughput, dualRunAgreement } = await import('../lib/status/aggregates.js');
  const { jobsView } = await import('../lib/status/jobs.js');
  const { listedStreams, organizationsInMode, readRowPage } = await import('../lib/status/streams.js');
  const { LOST_HISTORY_REASONS, STREAM_STATES, readSeriesStreams } = await import('../lib/status/report.js');
  const { alertStreams } = await import('../lib/status/alerts.js');
  const listed = await listedStreams(ctx);
  const cps = db.collection<{ _id: string }>(COLLECTIONS.checkpoints);
  for (const [name, fn] of [
    ['listStreams (distinct on workflows, ids)', () => listedStreams(ctx)],
    ['checkpoints: distinct _id', () => cps.distinct('_id')],
    ['checkpoints: every document (before)', () => cps.find({}, { projection: { token: 0 } }).toArray()],
    ['checkpoints: countDocuments({})', () => cps.countDocuments({})],
    ...(() => {
      // The queries readRowPage makes, one by one (lib/status/streams.ts).
      const nowD = new Date();
      const settled = { state: 'idle', paused: { $ne: true }, 'lease.expiresAt': { $not: { $gt: nowD } }, tokenTime: { $lt: nowD } };
      const caughtUp = { 'lastRun.status': 'completed', 'lastRun.stoppedBy': 'idle', recovery: null };
      const behind = { ...settled, $nor: [caughtUp] };
      return [
        ['  settled behind: countDocuments', () => cps.countDocuments(behind)],
        ['  settled caught up: countDocuments', () => cps.countDocuments({ ...settled, ...caughtUp })],
        ['  unsettled: find whole', () => cps.find({ $nor: [settled] }).toArray()],
        ['  settled behind: sort tokenTime, skip 100, limit 50', () => cps.find(behind, { projection: { tokenTime: 1 } }).sort({ tokenTime: 1, _id: 1 }).skip(100).limit(50).toArray()],
        ['  oldest tokenTime (max lag)', () => cps.find(behind, { projection: { tokenTime: 1 } }).sort({ tokenTime: 1 }).limit(1).toArray()],
        ['  gaps $group over checkpoints with a window', () => cps.aggregate([{ $match: { $or: [{ gapCount: { $gt: 0 } }, { 'gaps.0': { $exists: true } }] } }, { $group: { _id: null, n: { $sum: '$gapCount' } } }]).toArray()],
        ['  page checkpoints by _id ($in of 50)', () => cps.find({ _id: { $in: Array.from({ length: 50 }, (_, i) => `org:${org(i * 7)}`) } }).toArray()],
      ] as const;
    })(),
    ['readRowPage page 3', () => readRowPage(ctx, Date.now(), { q: '', page: 3, limit: 50 }, listed, LOST_HISTORY_REASONS, STREAM_STATES)],
    ['readRowPage search o012', () => readRowPage(ctx, Date.now(), { q: 'o012', page: 1, limit: 50 }, listed, LOST_HISTORY_REASONS, STREAM_STATES)],
    ['jobMetrics', () => jobMetrics(ctx)],
    ['throughput (runs of 30 min)', () => recentThroughput(ctx, Date.now())],
    ['jobsView', () => jobsView(ctx)],
    ['dualRun (organizations in dual mode by config)', () => dualRunAgreement(ctx, Date.now(), organizationsInMode(ctx.config, 'dual'))],
    ['Prometheus series streams', () => readSeriesStreams(ctx)],
    ['alert streams', () => alertStreams(ctx, {}, [])],
  ] as const) {
    const a = performance.now();
    await (fn as () => Promise<unknown>)();
    process.stdout.write(`${name} ${(performance.now() - a).toFixed(0)} ms\n`);
  }
}
const route: number[] = [];
const reads: number[] = [];
const renders: number[] = [];
let bytes = 0;
for (let r = 0; r < ROUNDS + 1; r++) {
  const a = performance.now();
  const res = await status.GET(new Request('http://localhost/api/status?format=html&page=3', { headers: { authorization: 'Bearer status-scale-admin-token' } }));
  bytes = (await res.text()).length;
  const b = performance.now();
  const report = await readStatus(ctx, { q: '', page: 3, limit: 50 });
  const c = performance.now();
  renderHtml(report);
  const d = performance.now();
  if (r === 0) continue; // warm-up: the first round compiles and fills caches
  route.push(b - a);
  reads.push(c - b);
  renders.push(d - c);
}
const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const f = (ms: number) => `${ms.toFixed(0)} ms`;
process.stdout.write(
  `status at scale: ${N.toLocaleString('en-US')} organizations, ${LAYOUT} layout, mode ${config.TRIGGER_MODE} (seeded in ${f(seededMs)}), ${ROUNDS} rounds after one warm-up\n` +
    `  GET /api/status?format=html  median ${f(med(route))}  max ${f(Math.max(...route))}  (${(bytes / 1024).toFixed(0)} KiB page)\n` +
    `  readStatus                   median ${f(med(reads))}\n` +
    `  renderHtml (one page)        median ${f(med(renders))}\n`,
);
provideContext(null);
await closeMongoClients();
await target.close();
