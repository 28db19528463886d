import type { AppContext } from '../platform/context.js';
import { BadRequestError, ConflictError, NotFoundError } from '../platform/errors.js';
import { CheckpointStore } from '../streams/checkpoint.js';
import { resolveStream } from '../streams/refs.js';
import { clockTimestamp, serverTime, timestampDate } from './resume.js';
import type { RecoveryState } from '../data/documents.js';

/** What an operator restart did. */
export interface RestartResult {
  streamId: string;
  /** The cluster time the stream opens at (ISO, seconds precision). */
  at: Date;
  /** The window the next drain scans and records as a gap of reason `restart`. */
  scan: { from: Date; to: Date };
}

/** How far ahead of the cluster's clock a requested time may be (clock differences), in ms. */
const FUTURE_TOLERANCE_MS = 1_000;

/**
 * Operator restart (`POST /api/trigger {action: 'restart', streamId, at}`, `npm run ops -- restart`):
 * drop the saved resume token and open the stream at `at` (`startAtOperationTime`); the next drain
 * first scans the skipped window, from the last saved position to `at`, and records it as a gap
 * of reason `restart` (the same scan as a recovery: RECOVERY_SKEW_MS on both sides, `_id` times).
 *
 * For a stream whose resume point the server refuses for good, or one an operator wants to move
 * on from. It only moves a stream forward: to dispatch what was written before the last saved
 * position again, reconcile since a time instead.
 *
 * Errors (4xx): BadRequestError for a malformed stream id, a time that is not a time, a time in the
 * future, or one before the stream's last saved position; NotFoundError for a stream that was
 * never drained (no checkpoint); ConflictError while a drain holds the stream's lease.
 */
export async function restartStream(ctx: AppContext, streamId: string, at: Date | 'now'): Promise<RestartResult> {
  const stream = await resolveStream(ctx, { streamId });
  const store = new CheckpointStore(ctx.db);
  const cp = await store.get(stream.id);
  if (!cp) throw new NotFoundError(`stream ${stream.id} has no checkpoint (it was never drained); drain it first, or reconcile since a time`);
  const nowTs = await serverTime(ctx.db, ctx.clock);
  const now = timestampDate(nowTs);
  let startAt = nowTs;
  if (at !== 'now') {
    if (Number.isNaN(at.getTime())) throw new BadRequestError('at must be an ISO 8601 time with a zone, or "now"');
    if (at.getTime() > now.getTime() + FUTURE_TOLERANCE_MS) throw new BadRequestError(`at (${at.toISOString()}) is in the future; the cluster's time is ${now.toISOString()}`);
    startAt = clockTimestamp(at.getTime());
  }
  const last = cp.tokenTime ?? (cp.startAt ? timestampDate(cp.startAt) : null);
  const to = timestampDate(startAt);
  if (last && to.getTime() < last.getTime()) {
    throw new BadRequestError(`at (${to.toISOString()}) is before the stream's last saved position (${last.toISOString()}); a restart only moves a stream forward — use reconcileSince to dispatch earlier submissions again`);
  }
  const from = last ?? to;
  const recordedAt = new Date(ctx.clock.now());
  const recovery: RecoveryState = {
    kind: 'restart',
    from: new Date(from.getTime() - ctx.config.RECOVERY_SKEW_MS),
    to,
    freshToken: null,
    freshAt: startAt,
    cursor: null,
    scanned: 0,
    jobsCreated: 0,
    unplaced: 0,
    unplacedExamples: [],
    startedAt: recordedAt,
  };
  const outcome = await store.restart(stream.id, startAt, recovery, recordedAt);
  if (outcome === 'missing') throw new NotFoundError(`stream ${stream.id} has no checkpoint`);
  if (outcome === 'leased') {
    // A continuous relay hands the lease from window to window, so "after the run ends" never comes.
    const relayed = (cp.relay?.generation ?? 0) > 0;
    throw new ConflictError(
      relayed
        ? `stream ${stream.id} is drained by the continuous relay, whose next window takes the lease as this one ends; pause it first (npm run ops -- pause ${stream.id}), restart it once its window ends (by ${cp.lease?.expiresAt.toISOString() ?? 'the end of the window'}), then resume it (npm run ops -- resume ${stream.id})`
        : `stream ${stream.id} is being drained; restart it after the run ends (its lease expires by ${cp.lease?.expiresAt.toISOString() ?? 'the end of the window'})`,
    );
  }
  ctx.log.warn('stream restarted by an operator', { streamId: stream.id, at: to, scanFrom: recovery.from });
  return { streamId: stream.id, at: to, scan: { from: recovery.from, to } };
}
