import type { Collection, Document, Filter } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import type { Deadline } from '../platform/clock.js';
import { rolloutModeFor } from '../streams/rollout.js';
import { CheckpointStore } from '../streams/checkpoint.js';
import { planJobs } from '../dispatch/plan.js';
import { writeDeadLetters, writeJobs } from '../dispatch/write.js';
import { type DispatchInput } from '../dispatch/events.js';
import { loadWorkflows, type Workflows } from '../dispatch/workflows.js';
import { streamCollection } from '../streams/refs.js';
import type { GapReason } from '../data/documents.js';
import type { StreamRef } from '../streams/refs.js';
import { BadRequestError } from '../platform/errors.js';
import { ObjectId } from 'mongodb';

/** Where a scan stands: the last document dispatched, in (submittedAt, _id) order. */
export interface ScanCursor {
  submittedAt: Date;
  id: unknown;
}

export interface ScanResult {
  scanned: number;
  jobsCreated: number;
  duplicates: number;
  deadLettered: number;
  /** Null when the scan reached the end of its range. */
  cursor: ScanCursor | null;
  complete: boolean;
}

/** Clock skew allowed between the application's `submittedAt` and the database's cluster time. */
export const SCAN_SKEW_MS = 60_000;
const SCAN_CHUNK = 500;

/**
 * Scan a source for submissions with `submittedAt` in [from, to] and dispatch them idempotently
 * (path `reconcile`). Stops at the deadline and returns its cursor so the next run continues where
 * this one stopped. Uses the index `{submittedAt: 1, _id: 1}` on the source when it exists.
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
  const result: ScanResult = { scanned: 0, jobsCreated: 0, duplicates: 0, deadLettered: 0, cursor: range.after ?? null, complete: false };
  const bounds: Filter<Document> = { submittedAt: { $gte: range.from, $lte: range.to } };
  for (;;) {
    if (deadline.passed()) return result;
    const after = result.cursor;
    const filter: Document = after
      ? { $and: [bounds, { $or: [{ submittedAt: { $gt: after.submittedAt } }, { submittedAt: after.submittedAt, _id: { $gt: after.id } }] }] }
      : bounds;
    const docs = await source.find(filter, { sort: { submittedAt: 1, _id: 1 }, limit: SCAN_CHUNK, allowDiskUse: true }).toArray();
    if (docs.length === 0) {
      result.complete = true;
      return result;
    }
    const now = new Date(ctx.clock.now());
    const inputs: DispatchInput[] = docs.map((doc) => ({ operationType: 'insert', document: doc, eventId: null, clusterTime: null, wallTime: null }));
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
    const last = docs[docs.length - 1]!;
    result.cursor = { submittedAt: last.submittedAt as Date, id: last._id };
    await onChunk?.(result.cursor, result);
    if (docs.length < SCAN_CHUNK) {
      result.complete = true;
      return result;
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
): Promise<ReconcileSummary> {
  const now = new Date(ctx.clock.now());
  if (Number.isNaN(since.getTime())) throw new BadRequestError('reconcileSince is not a valid time');
  if (since.getTime() > now.getTime()) throw new BadRequestError('reconcileSince is in the future');
  const registry = await loadWorkflows(ctx.db, stream.kind === 'shared' ? null : stream.orgId, ctx.log);
  const source = await streamCollection(ctx, stream);
  const to = new Date(now.getTime() + SCAN_SKEW_MS);
  const scan = await scanAndDispatch(ctx, stream, source, registry, { from: since, to }, deadline);
  const runId = new ObjectId().toHexString();
  await new CheckpointStore(ctx.db).recordGap(stream, {
    id: `${reason}:${runId}`,
    from: since,
    to: now,
    count: scan.scanned,
    jobsCreated: scan.jobsCreated,
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
    complete: scan.complete,
  };
}
