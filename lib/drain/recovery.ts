import type { Collection } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import type { Deadline } from '../platform/clock.js';
import type { CheckpointStore, Lease } from '../streams/checkpoint.js';
import type { Workflows } from '../dispatch/workflows.js';
import { scanAndDispatch, UNPLACED_EXAMPLES } from './reconcile.js';
import type { CheckpointDoc, GapRecord, RecoveryState, ResumeToken } from '../data/documents.js';
import type { Timestamp } from 'mongodb';
import type { StreamRef } from '../streams/refs.js';

/**
 * Recovery after lost history, an unusable token or an operator restart: the state a new recovery
 * starts from, and the scan of its gap with progress persisted under the lease, so that a gap
 * larger than one window is finished by the next runs and recorded exactly once.
 *
 * The window reaches RECOVERY_SKEW_MS before the last known position (writers' `submittedAt` may run
 * behind the cluster's clock) and the same after its end.
 */
export function newRecovery(
  kind: RecoveryState['kind'],
  checkpoint: CheckpointDoc,
  lastKnown: Date | null,
  fresh: { token: ResumeToken | null; at?: Timestamp | null },
  now: Date,
  skewMs: number,
): RecoveryState {
  const since = lastKnown ?? checkpoint.tokenTime ?? checkpoint.lastEventWallTime ?? checkpoint.lastRun?.startedAt ?? checkpoint.createdAt;
  return {
    kind,
    from: new Date(new Date(since).getTime() - skewMs),
    to: now,
    freshToken: fresh.token,
    freshAt: fresh.at ?? null,
    cursor: null,
    scanned: 0,
    jobsCreated: 0,
    unplaced: 0,
    unplacedExamples: [],
    startedAt: now,
  };
}

export interface GapScan {
  complete: boolean;
  jobsCreated: number;
  duplicates: number;
  deadLettered: number;
  /** The gap recorded when the scan completed. */
  gap: GapRecord | null;
}

/**
 * Scan the recovery's gap from where it stands. When the scan completes, the gap is recorded on
 * the checkpoint (once per recovery, keyed by its start); the caller then adopts `freshToken` (or
 * `freshAt`) and clears the recovery.
 */
export async function scanRecoveryGap(
  ctx: AppContext,
  target: { stream: StreamRef; source: Collection; registry: Workflows; store: CheckpointStore; lease: Lease; runId: string },
  state: RecoveryState,
  deadline: Deadline,
): Promise<GapScan> {
  const { stream, source, registry, store, lease } = target;
  const range = { from: state.from, to: new Date(state.to.getTime() + ctx.config.RECOVERY_SKEW_MS), after: state.cursor };
  const merged = (progress: { scanned: number; jobsCreated: number; unplaced: number; unplacedExamples: NonNullable<RecoveryState['unplacedExamples']> }) => ({
    scanned: state.scanned + progress.scanned,
    jobsCreated: state.jobsCreated + progress.jobsCreated,
    unplaced: (state.unplaced ?? 0) + progress.unplaced,
    unplacedExamples: [...(state.unplacedExamples ?? []), ...progress.unplacedExamples].slice(0, UNPLACED_EXAMPLES),
  });
  const scan = await scanAndDispatch(ctx, stream, source, registry, range, deadline, async (cursor, progress) => {
    await store.saveRecovery(lease, { ...state, cursor, ...merged(progress) }, new Date(ctx.clock.now()));
  });
  let gap: GapRecord | null = null;
  if (scan.complete) {
    const total = merged(scan);
    gap = {
      id: `${state.kind}:${state.startedAt.toISOString()}`,
      from: state.from,
      to: state.to,
      count: total.scanned,
      jobsCreated: total.jobsCreated,
      unplaced: total.unplaced,
      unplacedExamples: total.unplacedExamples,
      reason: state.kind,
      recordedAt: new Date(ctx.clock.now()),
      runId: target.runId,
    };
    await store.recordGap(stream, gap);
    if (total.unplaced > 0) {
      ctx.log.warn('recovery scan found documents their submittedAt does not place in the gap', { streamId: stream.id, gapId: gap.id, unplaced: total.unplaced, examples: total.unplacedExamples });
    }
  }
  return { complete: scan.complete, jobsCreated: scan.jobsCreated, duplicates: scan.duplicates, deadLettered: scan.deadLettered, gap };
}
