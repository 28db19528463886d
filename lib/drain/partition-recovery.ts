import type { Collection, Db } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import type { Deadline } from '../platform/clock.js';
import type { Workflows } from '../dispatch/workflows.js';
import { isSubmissionCollection, partitionOf } from '../streams/partition.js';
import type { StreamRef } from '../streams/refs.js';
import { scanAndDispatch, UNPLACED_EXAMPLES, type ScanResult } from './reconcile.js';
import type { CheckpointStore, Lease } from '../streams/checkpoint.js';
import type { GapRecord, RecoveryState } from '../data/documents.js';
import { ObjectId } from 'mongodb';
import { registryForScan } from '../dispatch/timeline.js';
import type { GapScan } from './recovery.js';

/** Scans over the several submission collections a partition stream serves. */

export const RECOVERY_PREFIX = 'recovery:';

/**
 * The id of a partition's recovery document (a checkpoint with its own lease and fence, scanned by
 * lib/drain/recovery-run.ts): `recovery:partition:{p}/{P}`.
 */
export function recoveryId(partition: Pick<StreamRef, 'id'>): string {
  return `${RECOVERY_PREFIX}${partition.id}`;
}

/** True for a recovery document id (`recovery:partition:{p}/{P}`). */
export function isRecoveryId(id: string): boolean {
  return id.startsWith(RECOVERY_PREFIX);
}

/** A window as the recovery document queues it: with an id of its own (kept when it has one). */
export function withWindowId(state: RecoveryState): RecoveryState & { id: string } {
  return { ...state, id: state.id ?? new ObjectId().toHexString() };
}

/**
 * The submission collections partition p of P serves now (`listCollections`, names only): the
 * `submissions_*` and legacy shared collections whose name `partitionOf` places in p, sorted by name.
 */
export async function partitionCollections(db: Db, stream: Extract<StreamRef, { kind: 'partition' }>): Promise<Collection[]> {
  const names = (await db.listCollections({}, { nameOnly: true }).toArray())
    .map((c) => c.name)
    .filter((name) => isSubmissionCollection(name) && partitionOf(name, stream.partitions) === stream.partition)
    .sort();
  return names.map((name) => db.collection(name));
}

/**
 * Scan several sources one after another (sorted by name) for the same range, dispatching
 * idempotently; stops at the deadline. Totals are summed; `complete` when every source was scanned
 * to the end of the range.
 */
export async function scanSources(
  ctx: AppContext,
  stream: StreamRef,
  sources: readonly Collection[],
  registry: Workflows,
  range: { from: Date; to: Date },
  deadline: Deadline,
): Promise<ScanResult> {
  const total: ScanResult = { scanned: 0, jobsCreated: 0, duplicates: 0, deadLettered: 0, unplaced: 0, unplacedExamples: [], cursor: null, complete: true };
  for (const source of sources) {
    const scan = await scanAndDispatch(ctx, stream, source, registry, range, deadline);
    total.scanned += scan.scanned;
    total.jobsCreated += scan.jobsCreated;
    total.duplicates += scan.duplicates;
    total.deadLettered += scan.deadLettered;
    total.unplaced += scan.unplaced;
    total.unplacedExamples = [...total.unplacedExamples, ...scan.unplacedExamples].slice(0, UNPLACED_EXAMPLES);
    total.cursor = scan.cursor;
    if (!scan.complete) {
      total.complete = false;
      return total;
    }
  }
  return total;
}

/**
 * The recovery scan of a partition (history lost, token refused, restart): every submission
 * collection the partition serves, one after another in name order, each over the recovery's window
 * (RECOVERY_SKEW_MS on both sides). Progress is persisted under the lease after every chunk (the
 * collection and its cursor) and after every finished collection, so a scan longer than one window
 * goes on where it stopped. Workflows apply to each submission as they were in force when it was
 * saved (the timeline). The gap is recorded once on the partition, with its window and count.
 */
export async function scanPartitionGap(
  ctx: AppContext,
  target: { stream: Extract<StreamRef, { kind: 'partition' }>; store: CheckpointStore; lease: Lease; runId: string },
  state: RecoveryState,
  deadline: Deadline,
): Promise<GapScan> {
  const { stream, store, lease } = target;
  const registry = await registryForScan(ctx.db, null, {}, ctx.log);
  const range = { from: state.from, to: new Date(state.to.getTime() + ctx.config.RECOVERY_SKEW_MS) };
  let current: RecoveryState = { ...state, collectionsDone: [...(state.collectionsDone ?? [])] };
  const result: GapScan = { complete: false, jobsCreated: 0, duplicates: 0, deadLettered: 0, gap: null };
  for (const source of await partitionCollections(ctx.db, stream)) {
    const name = source.collectionName;
    if (current.collectionsDone!.includes(name)) continue;
    const after = current.collection === name ? current.cursor : null;
    const base = current;
    const scan = await scanAndDispatch(ctx, stream, source, registry, { ...range, after }, deadline, async (cursor, progress) => {
      current = { ...base, collection: name, cursor, scanned: base.scanned + progress.scanned, jobsCreated: base.jobsCreated + progress.jobsCreated, unplaced: (base.unplaced ?? 0) + progress.unplaced };
      await store.saveRecovery(lease, current, new Date(ctx.clock.now()));
    });
    result.jobsCreated += scan.jobsCreated;
    result.duplicates += scan.duplicates;
    result.deadLettered += scan.deadLettered;
    current = { ...base, collection: null, cursor: null, scanned: base.scanned + scan.scanned, jobsCreated: base.jobsCreated + scan.jobsCreated, unplaced: (base.unplaced ?? 0) + scan.unplaced };
    if (!scan.complete) {
      current = { ...current, collection: name, cursor: scan.cursor };
      await store.saveRecovery(lease, current, new Date(ctx.clock.now()));
      return result;
    }
    current.collectionsDone = [...current.collectionsDone!, name];
    await store.saveRecovery(lease, current, new Date(ctx.clock.now()));
  }
  const gap: GapRecord = {
    id: `${state.kind}:${state.startedAt.toISOString()}`,
    from: state.from,
    to: state.to,
    count: current.scanned,
    jobsCreated: current.jobsCreated,
    unplaced: current.unplaced ?? 0,
    unplacedExamples: [],
    reason: state.kind,
    recordedAt: new Date(ctx.clock.now()),
    runId: target.runId,
  };
  await store.recordGap(stream, gap);
  return { ...result, complete: true, gap };
}
