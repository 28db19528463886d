import type { Collection } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import type { Deadline } from '../platform/clock.js';
import type { CheckpointStore, Lease } from '../streams/checkpoint.js';
import type { Workflows } from '../dispatch/workflows.js';
import { scanAndDispatch, SCAN_SKEW_MS } from './reconcile.js';
import type { CheckpointDoc, RecoveryState, ResumeToken } from '../data/documents.js';
import type { StreamRef } from '../streams/refs.js';

/**
 * Recovery after lost history or an unusable token: the state a new recovery starts from, and the
 * scan of its gap with progress persisted under the lease, so that a gap larger than one window is
 * finished by the next runs and recorded exactly once.
 */
export function newRecovery(
  kind: RecoveryState['kind'],
  checkpoint: CheckpointDoc,
  lastKnown: Date | null,
  freshToken: ResumeToken | null,
  now: Date,
): RecoveryState {
  const since = lastKnown ?? checkpoint.tokenTime ?? checkpoint.lastEventWallTime ?? checkpoint.lastRun?.startedAt ?? checkpoint.createdAt;
  return {
    kind,
    from: new Date(new Date(since).getTime() - SCAN_SKEW_MS),
    to: now,
    freshToken,
    cursor: null,
    scanned: 0,
    jobsCreated: 0,
    startedAt: now,
  };
}

export interface GapScan {
  complete: boolean;
  jobsCreated: number;
  duplicates: number;
  deadLettered: number;
}

/**
 * Scan the recovery's gap from where it stands. When the scan completes, the gap is recorded on
 * the checkpoint (once per recovery, keyed by its start); the caller then adopts `freshToken` and
 * clears the recovery.
 */
export async function scanRecoveryGap(
  ctx: AppContext,
  target: { stream: StreamRef; source: Collection; registry: Workflows; store: CheckpointStore; lease: Lease; runId: string },
  state: RecoveryState,
  deadline: Deadline,
): Promise<GapScan> {
  const { stream, source, registry, store, lease } = target;
  const range = { from: state.from, to: new Date(state.to.getTime() + SCAN_SKEW_MS), after: state.cursor };
  const scan = await scanAndDispatch(ctx, stream, source, registry, range, deadline, async (cursor, progress) => {
    const saved = { ...state, cursor, scanned: state.scanned + progress.scanned, jobsCreated: state.jobsCreated + progress.jobsCreated };
    await store.saveRecovery(lease, saved, new Date(ctx.clock.now()));
  });
  if (scan.complete) {
    await store.recordGap(stream, {
      id: `${state.kind}:${state.startedAt.toISOString()}`,
      from: state.from,
      to: state.to,
      count: state.scanned + scan.scanned,
      jobsCreated: state.jobsCreated + scan.jobsCreated,
      reason: state.kind,
      recordedAt: new Date(ctx.clock.now()),
      runId: target.runId,
    });
  }
  return { complete: scan.complete, jobsCreated: scan.jobsCreated, duplicates: scan.duplicates, deadLettered: scan.deadLettered };
}
