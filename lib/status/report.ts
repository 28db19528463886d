import type { AppContext } from '../platform/context.js';
import { rolloutModeFor } from '../streams/rollout.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { CheckpointDoc, DrainSummary, GapRecord, StartedBy, StreamState } from '../data/documents.js';
import type { StreamRef } from '../streams/refs.js';
import { listStreams } from '../streams/refs.js';
import { jobMetrics, type JobMetrics } from '../jobs/metrics.js';
import { dualRunAgreement, recentThroughput, type DualRun, type Throughput } from './aggregates.js';
import { relayStatus, type StreamRelayStatus } from './relay.js';

/**
 * The status read model: everything `GET /api/status`, the alerts and the operator CLI show, read
 * in a handful of queries. It holds ids, counts and times only — never configuration values, URIs
 * or secrets — so every renderer may print all of it.
 */

export const STREAM_STATES: readonly StreamState[] = ['idle', 'draining', 'recovering', 'failing', 'paused'];

/** Recent gap windows shown per stream. */
const RECENT_GAPS = 5;

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
  orgId: string | null;
  /** False when a checkpoint exists but the stream is no longer listed (flag turned off, org gone). */
  listed: boolean;
  state: StreamState;
  /** Age of the resume point (now − token cluster time): how far behind the stream is. Null before the first token. */
  lagMs: number | null;
  /** Time since the token was last saved. */
  tokenAgeMs: number | null;
  consecutiveFailures: number;
  /** Milliseconds until the current drain's lease expires, when one holds it. */
  leaseExpiresInMs: number | null;
  lastRun: RunBrief | null;
  /**
   * `unplaced`: documents the kept gap records found only by `_id` creation time, their
   * `submittedAt` missing, not a date or outside the window (lib/drain/reconcile.ts); alerted.
   */
  gaps: { count: number; unplaced: number; recent: Pick<GapRecord, 'from' | 'to' | 'count' | 'reason' | 'recordedAt' | 'unplaced' | 'unplacedExamples'>[] };
  /** Dead-lettered events of this stream not yet replayed. */
  deadLetters: number;
  /** Relay chain (generation, handover gaps, watchdog restarts); null when no relay window drained it. */
  relay: StreamRelayStatus | null;
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
  totals: { streams: number; byState: Record<StreamState, number>; maxLagMs: number | null; gaps: number };
  jobs: JobsStatus;
  deadLetters: { events: number; jobs: number };
  dualRun: DualRun;
  throughput: Throughput;
  fanout: { lastTick: string | null; lastAt: Date | null; mode: string | null };
}

/** What state a stream is really in: a `draining` state whose lease expired belongs to a drain that died. */
export function effectiveState(cp: Pick<CheckpointDoc, 'state' | 'lease'> | null, nowMs: number): StreamState {
  if (!cp) return 'idle';
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

export function streamStatus(stream: StreamRef | null, cp: CheckpointDoc | null, deadLetters: number, nowMs: number, id: string): StreamStatus {
  const tokenTime = cp?.tokenTime ?? null;
  return {
    id,
    orgId: stream?.orgId ?? cp?.orgId ?? null,
    listed: stream !== null,
    state: effectiveState(cp, nowMs),
    lagMs: tokenTime ? Math.max(0, nowMs - tokenTime.getTime()) : null,
    tokenAgeMs: cp?.tokenSavedAt ? Math.max(0, nowMs - cp.tokenSavedAt.getTime()) : null,
    consecutiveFailures: cp?.consecutiveFailures ?? 0,
    leaseExpiresInMs: cp?.lease && cp.lease.expiresAt.getTime() > nowMs ? cp.lease.expiresAt.getTime() - nowMs : null,
    lastRun: brief(cp?.lastRun ?? null),
    gaps: {
      count: cp?.gapCount ?? 0,
      unplaced: (cp?.gaps ?? []).reduce((n, g) => n + (g.unplaced ?? 0), 0),
      recent: (cp?.gaps ?? [])
        .slice(-RECENT_GAPS)
        .reverse()
        .map(({ from, to, count, reason, recordedAt, unplaced, unplacedExamples }) => ({ from, to, count, reason, recordedAt, unplaced: unplaced ?? 0, unplacedExamples: unplacedExamples ?? [] })),
    },
    deadLetters,
    relay: relayStatus(cp),
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
  const [checkpoints, dlqByStream, metrics, dualRun, throughput, lastTick] = await Promise.all([
    ctx.db.collection<CheckpointDoc>(COLLECTIONS.checkpoints).find({}).toArray(),
    ctx.db
      .collection(COLLECTIONS.deadLetters)
      .aggregate<{ _id: string; n: number }>([{ $match: { replayedAt: null } }, { $group: { _id: '$streamId', n: { $sum: 1 } } }])
      .toArray(),
    jobMetrics(ctx),
    dualRunAgreement(ctx, now, dualOrgs),
    recentThroughput(ctx, now),
    ctx.db
      .collection<{ _id: string; lastAt: Date; mode: string }>(COLLECTIONS.fanoutTicks)
      .find({})
      .sort({ _id: -1 })
      .limit(1)
      .next(),
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
    },
    jobs,
    deadLetters: { events: [...dlq.values()].reduce((a, b) => a + b, 0), jobs: jobs.byStatus.dead },
    dualRun,
    throughput,
    fanout: { lastTick: lastTick?._id ?? null, lastAt: lastTick?.lastAt ?? null, mode: lastTick?.mode ?? null },
  };
}
