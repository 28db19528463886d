import { hostname } from 'node:os';
import { redact } from '../platform/redact.js';
import { isPaused } from '../streams/pause.js';
import { ObjectId } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import { Deadline } from '../platform/clock.js';
import { CheckpointStore } from '../streams/checkpoint.js';
import { classifyError, type ErrorClass } from './classify.js';
import { DrainSession, type SessionHooks } from './session.js';
import { JobsKick } from '../jobs/kick.js';
import { keepWarmRegistry, prepareDrain } from './partition-events.js';
import { kickRecovery, type RecoveryKickOutcome } from './recovery-run.js';
import { clockTimestamp } from './resume.js';
import { maxWindowMs, SAFETY_MARGIN_MS } from '../platform/limits.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { StartedBy, DrainSummary } from '../data/documents.js';
import type { StreamRef } from '../streams/refs.js';

export interface DrainOptions {
  /** Window for this run; capped by DRAIN_WINDOW_MS's ceiling (the function's maxDuration minus the safety margin). Default DRAIN_WINDOW_MS. */
  windowMs?: number;
  /** What started this run (stored as the run's `trigger`). Default `manual`. */
  startedBy?: StartedBy;
  /** Lease owner name; default host:pid:runId. */
  owner?: string;
  /**
   * Relay windows (lib/fanout/relay.ts): the chain generation this run carries. The lease is taken
   * only if the stored generation is lower, and stores this one; otherwise the run is `superseded`.
   */
  generation?: number;
  /** Hooks into the pass (continuous reading, handover, first read, abort); see SessionHooks. */
  hooks?: SessionHooks;
}

/**
 * Drain one stream for one bounded window (DESIGN section 5): take the lease, read from the saved
 * token, dispatch and checkpoint as it goes, stop before the deadline, record the run, release.
 * Everything after the lease is taken ends up in the summary; only taking the lease can throw
 * (nothing has happened then, so the caller's retry — a 5xx to QStash — is the right answer).
 */
export async function drainStream(ctx: AppContext, stream: StreamRef, opts: DrainOptions = {}): Promise<DrainSummary> {
  const { clock, config, db, log } = ctx;
  const startedAt = clock.now();
  const runId = new ObjectId().toHexString();
  const windowMs = Math.max(1, Math.min(opts.windowMs ?? config.DRAIN_WINDOW_MS, maxWindowMs('drain')));
  const deadline = Deadline.after(clock, windowMs);
  const store = new CheckpointStore(db);
  const summary = emptySummary(runId, stream.id, opts.startedBy ?? 'manual', startedAt);

  if (opts.generation !== undefined) summary.generation = opts.generation;
  const owner = opts.owner ?? `${hostname()}:${process.pid}:${runId}`;
  const lease = await store.acquire(stream, owner, new Date(startedAt), new Date(startedAt + windowMs + SAFETY_MARGIN_MS), opts.generation);
  summary.roundTrips++;
  if (!lease) {
    const cp = await store.get(stream.id);
    summary.status = 'skipped';
    const superseded = opts.generation !== undefined && (cp?.relay?.generation ?? 0) >= opts.generation;
    summary.stoppedBy = superseded ? 'superseded' : isPaused(cp) ? 'paused' : 'leased';
    return record(ctx, summary);
  }
  summary.tokenBefore = lease.checkpoint.token;
  summary.tokenAfter = lease.checkpoint.token;
  const kick = new JobsKick(ctx);
  // A partition's gap windows are scanned by recovery runs under their own lease: this drain asks
  // for one at its start (a pending or abandoned recovery) and after handing a window over, without
  // waiting for it. The asks are settled before the invocation returns.
  const recoveryKicks: Promise<RecoveryKickOutcome | null>[] = [];
  const askRecovery = () => {
    if (stream.kind !== 'partition') return;
    recoveryKicks.push(
      kickRecovery(ctx, stream).then((outcome) => {
        if (outcome.reason === 'error') log.warn('could not ask for a partition recovery run; the next drain asks again', { streamId: stream.id, error: outcome.error });
        return outcome;
      }, (error: unknown) => {
        log.warn('could not ask for a partition recovery run; the next drain asks again', { streamId: stream.id, error });
        return null;
      }),
    );
  };
  askRecovery();
  const hooks: SessionHooks = { ...opts.hooks, onJobsCreated: (n) => (kick.request(), opts.hooks?.onJobsCreated?.(n)), onRecoveryQueued: askRecovery };
  try {
    const { registry, target, startAt } = await prepareDrain(ctx, stream, lease.checkpoint);
    summary.roundTrips++;
    // No token yet: open where the stream's organizations' workflows came into force (no first-drain blind spot).
    if (!lease.checkpoint.token && !lease.checkpoint.startAt && startAt) lease.checkpoint.startAt = clockTimestamp(startAt.getTime());
    const session = new DrainSession(ctx, stream, lease, store, registry, target, deadline, summary, hooks);
    await session.run();
    if (summary.status === 'completed' && summary.recoveries.length === 0) keepWarmRegistry(db, stream, summary.tokenAfter, session.currentRegistry);
  } catch (error) {
    const kind = markFailed(summary, error);
    log.error('drain failed', { streamId: stream.id, runId, kind, error });
  }
  finishTimes(summary, clock.now());
  if (summary.stoppedBy !== 'lease_lost') {
    try {
      const released = await store.release(lease, summary, new Date(clock.now()), config.STREAM_FAILING_AFTER);
      summary.roundTrips++;
      if (!released) log.warn('lease was taken over before release', { streamId: stream.id, runId });
    } catch (error) {
      // The saved token is already durable; an unreleased lease just expires after window + margin.
      log.error('could not release the lease', { streamId: stream.id, runId, error });
      if (!summary.error) summary.error = { code: String((error as { code?: unknown }).code ?? 'release_failed'), message: 'the lease could not be released; it expires on its own' };
    }
  }
  // Kicks were fired during the run without blocking it; the invocation waits for their outcome.
  await kick.settled();
  const asked = (await Promise.all(recoveryKicks)).filter((k): k is RecoveryKickOutcome => k !== null && k.kicked);
  if (asked.length) summary.recoveryKicks = asked.length;
  if (kick.outcome.requested) summary.jobsKick = kick.outcome;
  return record(ctx, summary);
}

/**
 * Record on a run's summary that it failed with `error`: status `failed`, stopped by `lease_lost`
 * (another invocation owns the stream) or `error`, the error's code (else its class) and its
 * message with credentials redacted. Returns the error's class (lib/drain/classify.ts).
 */
export function markFailed(summary: DrainSummary, error: unknown): ErrorClass {
  const kind = classifyError(error);
  summary.status = 'failed';
  summary.stoppedBy = kind === 'lease_lost' ? 'lease_lost' : 'error';
  const e = error as { code?: unknown; message?: unknown };
  summary.error = { code: String(e?.code ?? kind), message: redact(String(e?.message ?? error)) };
  return kind;
}

/** A summary with nothing done yet (counters at zero, status `completed`). */
export function emptySummary(runId: string, streamId: string, startedBy: StartedBy, startedAt: number): DrainSummary {
  return {
    runId,
    streamId,
    status: 'completed',
    stoppedBy: 'deadline',
    trigger: startedBy,
    events: 0,
    jobsCreated: 0,
    duplicates: 0,
    deadLettered: 0,
    flushes: 0,
    roundTrips: 0,
    reconnects: 0,
    recoveries: [],
    tokenBefore: null,
    tokenAfter: null,
    busy: false,
    latencyMsAvg: null,
    latencyMsMax: null,
    startedAt: new Date(startedAt),
    endedAt: new Date(startedAt),
    durationMs: 0,
    error: null,
  };
}

function finishTimes(summary: DrainSummary, now: number): void {
  summary.endedAt = new Date(now);
  summary.durationMs = now - summary.startedAt.getTime();
}

/** Keep the run in `drain_runs` (TTL-capped). A failure to record never hides the run's result. */
export async function recordRun(ctx: AppContext, summary: DrainSummary): Promise<DrainSummary> {
  return record(ctx, summary);
}

async function record(ctx: AppContext, summary: DrainSummary): Promise<DrainSummary> {
  finishTimes(summary, Math.max(ctx.clock.now(), summary.endedAt.getTime()));
  try {
    await ctx.db.collection(COLLECTIONS.runs).insertOne({ _id: summary.runId as unknown as ObjectId, ...summary });
  } catch (error) {
    ctx.log.error('could not record drain run', { streamId: summary.streamId, runId: summary.runId, error });
  }
  return summary;
}
