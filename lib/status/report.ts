import type { AppContext } from '../platform/context.js';
import { isPaused } from '../streams/pause.js';
import { rolloutModeFor } from '../streams/rollout.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { CheckpointDoc, DrainSummary, FanoutTickDoc, GapReason, GapRecord, RecoveryState, StartedBy, StreamState } from '../data/documents.js';
import { isRecoveryId } from '../drain/partition-recovery.js';
import type { StreamRef } from '../streams/refs.js';
import { listStreams } from '../streams/refs.js';
import { jobMetrics, type JobMetrics } from '../jobs/metrics.js';
import { dualRunAgreement, recentThroughput, type DualRun, type Throughput } from './aggregates.js';
import { jobsView, type JobsView } from './jobs.js';
import { relayStatus, type StreamRelayStatus } from './relay.js';

/**
 * The status read model: everything `GET /api/status`, the alerts and the operator CLI show, read
 * in a handful of queries. It holds ids, counts and times only — never configuration values, URIs
 * or secrets — so every renderer may print all of it.
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
  streams: StreamStatus[];
  totals: { streams: number; byState: Record<StreamState, number>; maxLagMs: number | null; gaps: number; reconciles: number };
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

/** Build the whole report. */
export async function readStatus(ctx: AppContext): Promise<StatusReport> {
  const now = ctx.clock.now();
  const streams = await listStreams(ctx);
  const dualOrgs = [...new Set(streams.map((s) => s.orgId).filter((o): o is string => o !== null))].filter(
    (orgId) => rolloutModeFor(ctx.config, orgId) === 'dual',
  );
  const [checkpoints, dlqByStream, metrics, dualRun, throughput, lastTick, view] = await Promise.all([
    // Resume tokens and recovery cursors are not shown: leave them on the server.
    ctx.db.collection<CheckpointDoc>(COLLECTIONS.checkpoints).find({}, { projection: { token: 0, 'recovery.freshToken': 0, 'recovery.cursor': 0, 'pending.freshToken': 0, 'pending.cursor': 0, 'lastRun.tokenBefore': 0, 'lastRun.tokenAfter': 0, 'lastRun.recoveries': 0 } }).toArray(),
    ctx.db
      .collection(COLLECTIONS.deadLetters)
      .aggregate<{ _id: string; n: number }>([{ $match: { replayedAt: null } }, { $group: { _id: '$streamId', n: { $sum: 1 } } }])
      .toArray(),
    jobMetrics(ctx),
    dualRunAgreement(ctx, now, dualOrgs),
    recentThroughput(ctx, now),
    ctx.db
      .collection<FanoutTickDoc>(COLLECTIONS.fanoutTicks)
      .find({})
      .sort({ _id: -1 })
      .limit(1)
      .next(),
    jobsView(ctx),
  ]);
  const cpById = new Map(checkpoints.map((c) => [c._id, c]));
  const dlq = new Map(dlqByStream.map((d) => [d._id, d.n]));
  const listedIds = new Set(streams.map((s) => s.id));
  const rows = [
    ...streams.map((s) => streamStatus(s, cpById.get(s.id) ?? null, dlq.get(s.id) ?? 0, now, s.id)),
    ...checkpoints.filter((c) => !listedIds.has(c._id)).map((c) => streamStatus(null, c, dlq.get(c._id) ?? 0, now, c._id)),
  ].sort((a, b) => a.id.localeCompare(b.id));

  const byState = Object.fromEntries(STREAM_STATES.map((s) => [s, 0])) as Record<StreamState, number>;
  for (const row of rows) byState[row.state] += 1;
  const lags = rows.map((r) => r.lagMs).filter((l): l is number => l !== null);
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
    totals: {
      streams: rows.length,
      byState,
      maxLagMs: lags.length ? Math.max(...lags) : null,
      gaps: rows.reduce((n, r) => n + r.gaps.count, 0),
      reconciles: rows.reduce((n, r) => n + r.reconciles.count, 0),
    },
    jobs,
    jobsView: view,
    deadLetters: { events: [...dlq.values()].reduce((a, b) => a + b, 0), jobs: jobs.byStatus.dead },
    dualRun,
    throughput,
    fanout: { lastTick: lastTick?._id ?? null, lastAt: lastTick?.lastAt ?? null, mode: lastTick?.mode ?? null },
  };
}
