import type { Collection, Document, Filter, Sort } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import type { Deadline } from '../platform/clock.js';
import { rolloutModeFor } from '../streams/rollout.js';
import { CheckpointStore } from '../streams/checkpoint.js';
import { planJobs } from '../dispatch/plan.js';
import { writeDeadLetters, writeJobs } from '../dispatch/write.js';
import { type DispatchInput } from '../dispatch/events.js';
import type { Workflows } from '../dispatch/workflows.js';
import { registryForScan, savedAtOf } from '../dispatch/timeline.js';
import { partitionCollections, scanSources } from './partition-recovery.js';
import { streamCollection } from '../streams/refs.js';
import type { GapReason } from '../data/documents.js';
import type { StreamRef } from '../streams/refs.js';
import { BadRequestError } from '../platform/errors.js';
import { ObjectId } from 'mongodb';

/**
 * Where a scan stands. Phase `submittedAt` (the default): the last document dispatched in
 * (submittedAt, _id) order. Phase `id`: the last `_id` of the ObjectId range scan.
 */
export interface ScanCursor {
  phase?: 'submittedAt' | 'id';
  submittedAt: Date | null;
  id: unknown;
}

/** A document the scan found by its `_id` creation time alone (see `scanAndDispatch`). */
export type UnplacedReason = 'no_submitted_at' | 'submitted_at_not_a_date' | 'outside_window';

export interface ScanResult {
  scanned: number;
  jobsCreated: number;
  duplicates: number;
  deadLettered: number;
  /** Documents whose `submittedAt` could not place them in the window (found by `_id`, still dispatched). */
  unplaced: number;
  /** Up to UNPLACED_EXAMPLES of them: `_id` and why. */
  unplacedExamples: { id: unknown; reason: UnplacedReason }[];
  /** Null when the scan reached the end of its range. */
  cursor: ScanCursor | null;
  complete: boolean;
}

const SCAN_CHUNK = 500;
export const UNPLACED_EXAMPLES = 5;

/** The ObjectId range of documents created in [from, to] (ObjectId times have second precision). */
function idRange(from: Date, to: Date): Document {
  return {
    $gte: ObjectId.createFromTime(Math.floor(from.getTime() / 1000)),
    $lt: ObjectId.createFromTime(Math.floor(to.getTime() / 1000) + 1),
  };
}

function unplacedReason(doc: Document, from: Date, to: Date): UnplacedReason | null {
  const at = doc.submittedAt;
  if (at === undefined || at === null) return 'no_submitted_at';
  if (!(at instanceof Date)) return 'submitted_at_not_a_date';
  if (at.getTime() < from.getTime() || at.getTime() > to.getTime()) return 'outside_window';
  return null;
}

/**
 * Scan a source for the submissions of a time window and dispatch them idempotently (path
 * `reconcile`), in two range scans whose results are deduplicated:
 *
 * 1. `submittedAt` in [from, to] (the writer's time, index `{submittedAt: 1, _id: 1}`);
 * 2. `_id` in the ObjectId range of [from, to] (the creation time an ObjectId carries), skipping the
 *    documents scan 1 already dispatched. A writer's `submittedAt` alone is never trusted: what only
 *    scan 2 finds (no `submittedAt`, one that is not a date, or one outside the window) is
 *    dispatched too and counted as `unplaced`, with a few example ids.
 *
 * Stops at the deadline and returns its cursor so the next run continues where this one stopped.
 * Documents with neither a date `submittedAt` in the window nor an ObjectId `_id` cannot be found
 * by a range scan; they are outside what a gap record covers.
 */
export async function scanAndDispatch(
  ctx: AppContext,
  stream: StreamRef,
  source: Collection,
  registry: Workflows,
  range: { from: Date; to: Date; after?: ScanCursor | null },
  deadline: Deadline,
  onChunk?: (cursor: ScanCursor, progress: ScanResult) => Promise<void>,
): Promise<ScanResult> {
  const result: ScanResult = { scanned: 0, jobsCreated: 0, duplicates: 0, deadLettered: 0, unplaced: 0, unplacedExamples: [], cursor: range.after ?? null, complete: false };
  const bounds: Filter<Document> = { submittedAt: { $gte: range.from, $lte: range.to } };
  for (;;) {
    if (deadline.passed()) return result;
    const after = result.cursor;
    const byId = after?.phase === 'id';
    let filter: Document;
    if (byId) {
      // Scan 2: by creation time, without what scan 1 dispatched.
      const ids: Document = idRange(range.from, range.to);
      if (after.id !== null && after.id !== undefined) ids.$gt = after.id;
      filter = { _id: ids, $nor: [bounds] };
    } else {
      filter = after
        ? { $and: [bounds, { $or: [{ submittedAt: { $gt: after.submittedAt } }, { submittedAt: after.submittedAt, _id: { $gt: after.id } }] }] }
        : bounds;
    }
    const sort: Sort = byId ? { _id: 1 } : { submittedAt: 1, _id: 1 };
    const docs = await source.find(filter, { sort, limit: SCAN_CHUNK, allowDiskUse: true }).toArray();
    if (docs.length > 0) {
      const now = new Date(ctx.clock.now());
      const inputs: DispatchInput[] = docs.map((doc) => ({ operationType: 'insert', document: doc, eventId: null, clusterTime: null, wallTime: null, savedAt: savedAtOf(doc) }));
      const plan = planJobs(inputs, registry, {
        source: stream.id,
        path: 'reconcile',
        now,
        orgId: stream.kind === 'shared' ? null : stream.orgId,
        orgAllowed: (org) => rolloutModeFor(ctx.config, org) !== 'explicit',
      });
      const written = await writeJobs(ctx.db, plan.jobs, 'reconcile');
      result.deadLettered += await writeDeadLetters(ctx.db, stream.id, stream.orgId, plan.poison, now);
      result.scanned += docs.length;
      result.jobsCreated += written.created;
      result.duplicates += written.duplicates;
      if (byId) {
        for (const doc of docs) {
          const reason = unplacedReason(doc, range.from, range.to);
          if (!reason) continue;
          result.unplaced++;
          if (result.unplacedExamples.length < UNPLACED_EXAMPLES) result.unplacedExamples.push({ id: doc._id, reason });
        }
      }
      const last = docs[docs.length - 1]!;
      result.cursor = byId ? { phase: 'id', submittedAt: null, id: last._id } : { phase: 'submittedAt', submittedAt: last.submittedAt as Date, id: last._id };
      await onChunk?.(result.cursor, result);
    }
    if (docs.length < SCAN_CHUNK) {
      if (byId) {
        result.complete = true;
        return result;
      }
      // Scan 1 is done: scan 2 starts at the beginning of the ObjectId range.
      result.cursor = { phase: 'id', submittedAt: null, id: null };
      await onChunk?.(result.cursor, result);
    }
  }
}

export interface ReconcileSummary {
  streamId: string;
  from: Date;
  to: Date;
  scanned: number;
  jobsCreated: number;
  duplicates: number;
  deadLettered: number;
  /** Documents found only by `_id` creation time (see `scanAndDispatch`). */
  unplaced: number;
  complete: boolean;
}

/**
 * Reconcile or backfill on purpose: scan a stream's source since a time and dispatch what is
 * missing. Safe to run beside a drain (dispatch is idempotent). The window is recorded as a gap
 * with reason `manual` so that it is visible in status.
 */
export async function reconcileSince(
  ctx: AppContext,
  stream: StreamRef,
  since: Date,
  deadline: Deadline,
  reason: GapReason = 'manual',
  opts: { includeLaterWorkflows?: boolean } = {},
): Promise<ReconcileSummary> {
  const now = new Date(ctx.clock.now());
  if (Number.isNaN(since.getTime())) throw new BadRequestError('reconcileSince is not a valid time');
  if (since.getTime() > now.getTime()) throw new BadRequestError('reconcileSince is in the future');
  // Workflows apply to submissions saved while they were in force, unless the operator opts in.
  const registry = await registryForScan(ctx.db, stream.kind === 'shared' || stream.kind === 'partition' ? null : stream.orgId, opts, ctx.log);
  const sources = stream.kind === 'partition' ? await partitionCollections(ctx.db, stream) : [await streamCollection(ctx, stream)];
  const to = new Date(now.getTime() + ctx.config.RECOVERY_SKEW_MS);
  const scan = await scanSources(ctx, stream, sources, registry, { from: since, to }, deadline);
  const runId = new ObjectId().toHexString();
  await new CheckpointStore(ctx.db).recordGap(stream, {
    id: `${reason}:${runId}`,
    from: since,
    to: now,
    count: scan.scanned,
    jobsCreated: scan.jobsCreated,
    unplaced: scan.unplaced,
    unplacedExamples: scan.unplacedExamples,
    reason,
    recordedAt: new Date(ctx.clock.now()),
    runId,
  });
  return {
    streamId: stream.id,
    from: since,
    to: now,
    scanned: scan.scanned,
    jobsCreated: scan.jobsCreated,
    duplicates: scan.duplicates,
    deadLettered: scan.deadLettered,
    unplaced: scan.unplaced,
    complete: scan.complete,
  };
}
