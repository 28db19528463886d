import type { Filter } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import { isPaused } from '../streams/pause.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { CheckpointDoc, DrainSummary, FanoutTickDoc, GapReason, GapRecord, RecoveryState, StartedBy, StreamState } from '../data/documents.js';
import { isRecoveryId } from '../drain/partition-recovery.js';
import type { StreamRef } from '../streams/refs.js';
import { DEFAULT_STREAM_LIMIT, ROW_PROJECTION, listedStreams, organizationsInMode, readRowPage, STREAM_ORDER, type StreamPageInfo, type StreamQuery, type StreamTotals } from './streams.js';
import { jobMetrics, type JobMetrics } from '../jobs/metrics.js';
import { dualRunAgreement, recentThroughput, type DualRun, type Throughput } from './aggregates.js';
import { jobsView, type JobsView } from './jobs.js';
import { relayStatus, type StreamRelayStatus } from './relay.js';

/**
 * The status read model: everything `GET /api/status` and the operator CLI show, read in a handful
 * of queries whatever the number of streams. `streams` holds one page of stream rows (search and
 * page in `streamsPage`, order in lib/status/streams.ts); `totals` count every stream. It holds ids,
 * counts and times only — never configuration values, URIs or secrets — so every renderer may print
 * all of it. The alerts and the Prometheus series read their own stream rows (lib/status/alerts.ts,
 * `readSeriesStreams`).
 */

export const STREAM_STATES: readonly StreamState[] = ['idle', 'draining', 'recovering', 'failing', 'paused'];

/** Recent gap windows shown per stream. */
const RECENT_GAPS = 5;

/** Gap reasons that mean change-stream history was lost; `manual` and `backfill` are scans run on purpose. */
export const LOST_HISTORY_REASONS: readonly GapReason[] = ['history_lost', 'invalid_token'];

type GapBrief = Pick<GapRecord, 'from' | 'to' | 'count' | 'jobsCreated' | 'reason' | 'recordedAt' | 'unplaced' | 'unplacedExamples'>;

export interface RunBrief {
  runId: string;
  status: DrainSummary['status'];
  stoppedBy: DrainSummary['stoppedBy'];
  trigger: StartedBy;
  events: number;
  jobsCreated: number;
  duplicates: number;
  deadLettered: number;
  /** Jobs judged on a looked-up document rather than the event's post-image (lib/drain/images.ts). */
  judgedOnLookup: number;
  startedAt: Date;
  durationMs: number;
  error: { code: string; message: string } | null;
}

export interface StreamStatus {
  id: string;
  /** The id's prefix (`org`, `source`, `shared`, `partition`, …): renderers treat every kind alike. */
  kind: string;
  orgId: string | null;
  /** False when a checkpoint exists but the stream is no longer listed (flag turned off, org gone). */
  listed: boolean;
  state: StreamState;
  /**
   * How long ago the oldest event the stream has not read yet was written, as far as the checkpoint
   * tells: 0 when the last drain read everything there was (it stopped because the stream was idle),
   * else the age of the resume point. Null before the first token. Events written since the last
   * drain are not seen here until the next one reads them (at most one fan-out interval).
   */
  lagMs: number | null;
  /** Age of the resume point (now − the token's cluster time), idle or not: what the oplog window must cover. */
  resumeAgeMs: number | null;
  /** Time since the token was last saved. */
  tokenAgeMs: number | null;
  consecutiveFailures: number;
  /** Milliseconds until the current drain's lease expires, when one holds it. */
  leaseExpiresInMs: number | null;
  lastRun: RunBrief | null;
  /** Recovery windows where change-stream history was lost (`history_lost`, `invalid_token`): count and the recent ones, newest first. */
  gaps: {
    count: number;
    recent: GapBrief[];
    /** Documents the kept records found only by `_id` creation time (`submittedAt` missing, not a date or outside the window; lib/drain/reconcile.ts); alerted. */
    unplaced: number;
  };
  /** Scans run on purpose (`manual` reconcile, `backfill`): not gaps, listed with their reason. */
  reconciles: { count: number; recent: GapBrief[] };
  /** Dead-lettered events of this stream not yet replayed. */
  deadLetters: number;
  /** Relay chain (generation, handover gaps, watchdog restarts); null when no relay window drained it. */
  relay: StreamRelayStatus | null;
  /**
   * A partition's recovery document (`recovery:partition:{p}/{P}`, lib/drain/recovery-run.ts), present
   * while windows are pending: how many, and the progress of the one being scanned (null while all
   * are still queued). Its row's state is `recovering` until the last window is done; the partition's
   * own row keeps draining.
   */
  recovery?: RecoveryProgress;
}

export interface RecoveryProgress {
  /** Windows not finished yet (the one being scanned plus the queued ones). */
  windows: number;
  current: Pick<RecoveryState, 'kind' | 'from' | 'to' | 'scanned' | 'jobsCreated' | 'startedAt'> & { collectionsDone: number; collection: string | null } | null;
}

function recoveryProgress(cp: CheckpointDoc | null): RecoveryProgress | null {
  if (!cp || !isRecoveryId(cp._id)) return null;
  const windows = (cp.recovery ? 1 : 0) + (cp.pending?.length ?? 0);
  if (windows === 0) return null;
  const r = cp.recovery;
  const current = r ? { kind: r.kind, from: r.from, to: r.to, scanned: r.scanned, jobsCreated: r.jobsCreated, startedAt: r.startedAt, collectionsDone: r.collectionsDone?.length ?? 0, collection: r.collection ?? null } : null;
  return { windows, current };
}

export interface JobsStatus {
  byStatus: Record<'queued' | 'running' | 'succeeded' | 'failed' | 'dead', number>;
  /** Age of the oldest queued job that is due, or null when none is. */
  oldestQueuedAgeMs: number | null;
  /** Everything `jobMetrics` reports (due count, rates, attempts, latency percentiles). */
  metrics: JobMetrics;
}

export interface StatusReport {
  generatedAt: Date;
  rollout: { useChangeStreams: boolean; triggerMode: string; allOrgs: boolean; allowListed: number; qstash: boolean; alerts: boolean };
  /** One page of stream rows, in the status order (`streamsPage.order`). */
  streams: StreamStatus[];
  streamsPage: StreamPageInfo;
  /** Over every stream, not only the page. */
  totals: StreamTotals;
  jobs: JobsStatus;
  /** Where jobs stand: dead ones by workflow and error, queued ones retrying vs waiting for a first attempt. */
  jobsView: JobsView;
  deadLetters: { events: number; jobs: number };
  dualRun: DualRun;
  throughput: Throughput;
  fanout: { lastTick: string | null; lastAt: Date | null; mode: string | null };
}

/** What state a stream is really in: a `draining` state whose lease expired belongs to a drain that died. */
export function effectiveState(cp: Pick<CheckpointDoc, 'state' | 'lease' | 'paused'> | null, nowMs: number): StreamState {
  if (!cp) return 'idle';
  if (isPaused(cp)) return 'paused';
  const live = cp.lease !== null && cp.lease.expiresAt.getTime() > nowMs;
  if ((cp.state === 'draining' || cp.state === 'recovering') && !live) return 'idle';
  if (cp.state === 'idle' && live) return 'draining';
  return cp.state;
}

function brief(run: DrainSummary | null): RunBrief | null {
  if (!run) return null;
  const { runId, status, stoppedBy, trigger, events, jobsCreated, duplicates, deadLettered, startedAt, durationMs, error } = run;
  return { runId, status, stoppedBy, trigger, events, jobsCreated, duplicates, deadLettered, judgedOnLookup: run.judgedOnLookup ?? 0, startedAt, durationMs, error };
}

const brief5 = (gaps: GapRecord[]): GapBrief[] =>
  gaps
    .slice(-RECENT_GAPS)
    .reverse()
    .map(({ from, to, count, jobsCreated, reason, recordedAt, unplaced, unplacedExamples }) => ({ from, to, count, jobsCreated, reason, recordedAt, unplaced: unplaced ?? 0, unplacedExamples: unplacedExamples ?? [] }));

/** Split the checkpoint's recovery windows into lost history (gaps) and scans run on purpose (reconciles). */
function splitGaps(cp: CheckpointDoc | null): Pick<StreamStatus, 'gaps' | 'reconciles'> {
  const all = cp?.gaps ?? [];
  const lost = all.filter((g) => LOST_HISTORY_REASONS.includes(g.reason));
  const onPurpose = all.filter((g) => !LOST_HISTORY_REASONS.includes(g.reason));
  const total = cp?.gapCount ?? 0;
  // Per-reason counters when the checkpoint has them; older checkpoints only keep the last 50 records.
  const byReason = cp?.gapsByReason;
  const purposeCount = byReason ? Object.entries(byReason).filter(([r]) => !LOST_HISTORY_REASONS.includes(r as GapReason)).reduce((n, [, v]) => n + (v ?? 0), 0) : onPurpose.length;
  return {
    gaps: { count: Math.max(0, total - purposeCount), recent: brief5(lost), unplaced: all.reduce((n, g) => n + (g.unplaced ?? 0), 0) },
    reconciles: { count: purposeCount, recent: brief5(onPurpose) },
  };
}

/** True when the last drain read the stream up to the present: it ended because no event came. */
function caughtUp(cp: CheckpointDoc | null, state: StreamState): boolean {
  const run = cp?.lastRun;
  return run !== null && run !== undefined && run.status === 'completed' && run.stoppedBy === 'idle' && state === 'idle' && !cp?.recovery;
}

export function streamStatus(stream: StreamRef | null, cp: CheckpointDoc | null, deadLetters: number, nowMs: number, id: string): StreamStatus {
  const tokenTime = cp?.tokenTime ?? null;
  const recovery = recoveryProgress(cp);
  // A recovery with windows left is recovering between its runs too (effectiveState shows a
  // leaseless stream as idle); a failing or paused one keeps that state.
  const settled = effectiveState(cp, nowMs);
  const state = recovery && (settled === 'idle' || settled === 'draining') ? 'recovering' : settled;
  const resumeAgeMs = tokenTime ? Math.max(0, nowMs - tokenTime.getTime()) : null;
  return {
    id,
    kind: id.includes(':') ? id.slice(0, id.indexOf(':')) : id,
    orgId: stream?.orgId ?? cp?.orgId ?? null,
    listed: stream !== null,
    state,
    lagMs: resumeAgeMs === null ? null : caughtUp(cp, state) ? 0 : resumeAgeMs,
    resumeAgeMs,
    tokenAgeMs: cp?.tokenSavedAt ? Math.max(0, nowMs - cp.tokenSavedAt.getTime()) : null,
    consecutiveFailures: cp?.consecutiveFailures ?? 0,
    leaseExpiresInMs: cp?.lease && cp.lease.expiresAt.getTime() > nowMs ? cp.lease.expiresAt.getTime() - nowMs : null,
    lastRun: brief(cp?.lastRun ?? null),
    ...splitGaps(cp),
    deadLetters,
    relay: relayStatus(cp),
    ...(recovery ? { recovery } : {}),
  };
}

function jobsStatus(metrics: JobMetrics): JobsStatus {
  return { byStatus: { ...metrics.counts }, oldestQueuedAgeMs: metrics.oldestDueAgeMs, metrics };
}

const checkpointsColl = (ctx: AppContext) => ctx.db.collection<CheckpointDoc>(COLLECTIONS.checkpoints);

/** Dead-lettered events not yet replayed, for the given streams. */
async function deadLettersOf(ctx: AppContext, ids: string[]): Promise<Map<string, number>> {
  if (ids.length === 0) return new Map();
  const rows = await ctx.db
    .collection(COLLECTIONS.deadLetters)
    .aggregate<{ _id: string; n: number }>([{ $match: { replayedAt: null, streamId: { $in: ids } } }, { $group: { _id: '$streamId', n: { $sum: 1 } } }])
    .toArray();
  return new Map(rows.map((d) => [d._id, d.n]));
}

/** The default stream query: every stream, first page, 50 rows. */
export const ALL_STREAMS: StreamQuery = { q: '', page: 1, limit: DEFAULT_STREAM_LIMIT };

/**
 * Build the report with one page of stream rows (`query`: search, 1-based page, rows per page).
 * Cost: the queries of `readRowPage` (lib/status/streams.ts), the dead letters of the page's
 * streams, and the job, throughput and dual-run aggregations — none reads every checkpoint.
 */
export async function readStatus(ctx: AppContext, query: StreamQuery = ALL_STREAMS): Promise<StatusReport> {
  const now = ctx.clock.now();
  const listed = await listedStreams(ctx);
  const dualOrgs = organizationsInMode(ctx.config, 'dual');
  const [rowPage, dlqEvents, metrics, dualRun, throughput, lastTick, view] = await Promise.all([
    readRowPage(ctx, now, query, listed, LOST_HISTORY_REASONS, STREAM_STATES),
    ctx.db.collection(COLLECTIONS.deadLetters).countDocuments({ replayedAt: null }),
    jobMetrics(ctx),
    dualRunAgreement(ctx, now, dualOrgs, { q: query.q }),
    recentThroughput(ctx, now),
    ctx.db
      .collection<FanoutTickDoc>(COLLECTIONS.fanoutTicks)
      .find({})
      .sort({ _id: -1 })
      .limit(1)
      .next(),
    jobsView(ctx),
  ]);
  const dlq = await deadLettersOf(ctx, rowPage.rows.map((r) => r.id));
  const rows = rowPage.rows.map(({ id, checkpoint }) => {
    const orgId = listed.orgOf.get(id);
    const ref = orgId === undefined ? null : ({ id, orgId } as StreamRef);
    return streamStatus(ref, checkpoint, dlq.get(id) ?? 0, now, id);
  });
  const jobs = jobsStatus(metrics);
  const cfg = ctx.config;
  return {
    generatedAt: new Date(now),
    rollout: {
      useChangeStreams: cfg.USE_CHANGE_STREAMS,
      triggerMode: cfg.TRIGGER_MODE,
      allOrgs: cfg.CHANGE_STREAMS_ALL_ORGS,
      allowListed: cfg.CHANGE_STREAMS_ORG_IDS?.length ?? 0,
      qstash: ctx.publisher !== null,
      alerts: Boolean(cfg.ALERT_WEBHOOK_URL),
    },
    streams: rows,
    streamsPage: { q: query.q, page: rowPage.page, pages: rowPage.pages, limit: query.limit, matched: rowPage.matched, order: STREAM_ORDER },
    totals: rowPage.totals,
    jobs,
    jobsView: view,
    deadLetters: { events: dlqEvents, jobs: jobs.byStatus.dead },
    dualRun,
    throughput,
    fanout: { lastTick: lastTick?._id ?? null, lastAt: lastTick?.lastAt ?? null, mode: lastTick?.mode ?? null },
  };
}

/**
 * Stream rows for the given checkpoint filter (at most `max`, by id), plus the listed streams
 * without a checkpoint that `alsoListed` accepts. Used by the Prometheus series and the alerts,
 * which need a bounded set of streams rather than a page.
 */
export async function readStreamRows(ctx: AppContext, filter: Filter<CheckpointDoc>, alsoListed: (id: string, orgId: string | null) => boolean = () => false, max = 5_000): Promise<StreamStatus[]> {
  const now = ctx.clock.now();
  const listed = await listedStreams(ctx);
  const docs = await checkpointsColl(ctx).find(filter, { projection: ROW_PROJECTION }).sort({ _id: 1 }).limit(max).toArray();
  const extra = [...listed.orgOf].filter(([id, orgId]) => alsoListed(id, orgId)).map(([id]) => id);
  const missing = extra.length ? extra.filter((id) => !docs.some((d) => d._id === id)) : [];
  const withCp = missing.length ? new Set((await checkpointsColl(ctx).find({ _id: { $in: missing } }, { projection: { _id: 1 } }).toArray()).map((d) => d._id)) : new Set<string>();
  const ids = [...docs.map((d) => d._id), ...missing.filter((id) => !withCp.has(id))];
  const dlq = await deadLettersOf(ctx, ids);
  const refOf = (id: string) => (listed.orgOf.has(id) ? ({ id, orgId: listed.orgOf.get(id) ?? null } as StreamRef) : null);
  return [
    ...docs.map((d) => streamStatus(refOf(d._id), d, dlq.get(d._id) ?? 0, now, d._id)),
    ...missing.filter((id) => !withCp.has(id)).map((id) => streamStatus(refOf(id), null, dlq.get(id) ?? 0, now, id)),
  ].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * The streams Prometheus gets per-stream series for: every stream that is not an `org:` stream
 * (partitions, external sources, legacy shared collections — bounded by STREAM_PARTITIONS and the
 * data sources), every relayed stream, and every failing one. The `org:` streams of the collection
 * layout (one per organization) are in the totals only.
 */
export async function readSeriesStreams(ctx: AppContext): Promise<StreamStatus[]> {
  return readStreamRows(ctx, { $or: [{ _id: { $not: /^org:/ } }, { relay: { $exists: true } }, { state: 'failing', paused: { $ne: true } }] } as Filter<CheckpointDoc>, (id) => !id.startsWith('org:'));
}
