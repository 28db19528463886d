import { BSON, MongoBulkWriteError, type AnyBulkWriteOperation, type ChangeStreamDocument, type Db, type Document, type Timestamp } from 'mongodb';
import { COLLECTIONS } from '../data/mongo.js';
import type { Registry } from './workflows.js';
import { AppError } from '../platform/errors.js';
import type { JobDoc, TriggerEvent, TriggerPath } from '../data/documents.js';
import type { DeadLetterDoc, ResumeToken } from '../data/documents.js';
import { tokenId } from '../streams/token.js';

/** One submission seen by a trigger path: a change event, an explicit call, a scan hit. */
export interface DispatchInput {
  operationType: TriggerEvent;
  document: Record<string, unknown> | null;
  /** Event identity (resume token data) — part of the job key for update/replace. */
  eventId: string | null;
  clusterTime: Timestamp | null;
  wallTime: Date | null;
  documentKey?: unknown;
}

/** A change event as dispatch sees it (insert/update/replace; the document from fullDocument). */
export function changeEventInput(e: ChangeStreamDocument<Document>): DispatchInput {
  const ev = e as ChangeStreamDocument<Document> & { fullDocument?: Document | null; clusterTime?: Timestamp; wallTime?: Date; documentKey?: unknown };
  return {
    operationType: e.operationType as TriggerEvent,
    document: (ev.fullDocument ?? null) as Record<string, unknown> | null,
    eventId: tokenId(e._id as ResumeToken),
    clusterTime: ev.clusterTime ?? null,
    wallTime: ev.wallTime instanceof Date ? ev.wallTime : null,
    documentKey: ev.documentKey,
  };
}

/** Wall time of the last event of a batch, when the server sent one. */
export function lastWallTime(events: readonly ChangeStreamDocument<Document>[]): Date | null {
  const w = (events[events.length - 1] as { wallTime?: unknown } | undefined)?.wallTime;
  return w instanceof Date ? w : null;
}

export interface PoisonEvent {
  input: DispatchInput;
  code: 'document_unavailable' | 'malformed_submission' | 'oversized' | 'filter_failed';
  reason: string;
}

export interface DispatchPlan {
  jobs: JobDoc[];
  poison: PoisonEvent[];
  /** Events whose organization is handled by the explicit path only. */
  skipped: number;
}

export interface PlanOptions {
  source: string;
  path: TriggerPath;
  now: Date;
  /** Organization of the stream; null for shared collections (taken from each document). */
  orgId: string | null;
  /** Whether this path may dispatch for an organization (rollout modes). Default: always. */
  orgAllowed?: (orgId: string) => boolean;
}

/** Submissions larger than this cannot be snapshotted into a job (MongoDB's limit is 16 MiB). */
export const MAX_SUBMISSION_BYTES = 15 * 1024 * 1024;

/**
 * The job key. Inserts: `{workflowId}:{submissionId}:insert` — the explicit path computes the same,
 * which is what makes dual mode free of duplicates. Updates/replaces add the event's identity.
 */
export function jobKey(workflowId: string, submissionId: string, event: TriggerEvent, eventId?: string | null): string {
  if (event === 'insert') return `${workflowId}:${submissionId}:insert`;
  return `${workflowId}:${submissionId}:${event}:${eventId ?? 'unknown'}`;
}

function nonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

/** Turn inputs into jobs (pure). Anything that can never become a job is returned as poison. */
export function planJobs(inputs: readonly DispatchInput[], registry: Registry, opts: PlanOptions): DispatchPlan {
  const plan: DispatchPlan = { jobs: [], poison: [], skipped: 0 };
  for (const input of inputs) {
    const doc = input.document;
    if (!doc || typeof doc !== 'object') {
      plan.poison.push({ input, code: 'document_unavailable', reason: `${input.operationType} event without a document (deleted before lookup?)` });
      continue;
    }
    const orgId = opts.orgId ?? doc.organizationId;
    const { formId, _id } = doc;
    if (!nonEmptyString(orgId) || !nonEmptyString(formId) || _id === undefined || _id === null) {
      const missing = [!nonEmptyString(orgId) && 'organizationId', !nonEmptyString(formId) && 'formId', (_id ?? null) === null && '_id']
        .filter(Boolean)
        .join(', ');
      plan.poison.push({ input, code: 'malformed_submission', reason: `submission lacks ${missing}` });
      continue;
    }
    if (opts.orgAllowed && !opts.orgAllowed(orgId)) {
      plan.skipped++;
      continue;
    }
    const candidates = registry.forForm(orgId, formId).filter((wf) => wf.on.has(input.operationType));
    if (candidates.length === 0) continue;
    if (BSON.calculateObjectSize(doc) > MAX_SUBMISSION_BYTES) {
      plan.poison.push({ input, code: 'oversized', reason: `submission is larger than ${MAX_SUBMISSION_BYTES} bytes` });
      continue;
    }
    const submissionId = _id instanceof BSON.ObjectId ? _id.toHexString() : String(_id);
    for (const wf of candidates) {
      let matched: boolean;
      try {
        matched = wf.matches(doc);
      } catch (error) {
        plan.poison.push({ input, code: 'filter_failed', reason: `workflow ${wf.id} filter failed: ${(error as Error).message}` });
        continue;
      }
      if (!matched) continue;
      plan.jobs.push({
        key: jobKey(wf.id, submissionId, input.operationType, input.eventId),
        organizationId: orgId,
        workflowId: wf.id,
        workflowName: wf.name,
        formId,
        submissionId,
        source: opts.source,
        event: input.operationType,
        createdBy: opts.path,
        seenBy: [opts.path],
        status: 'queued',
        attempts: 0,
        runAt: opts.now,
        lease: null,
        lastError: null,
        steps: wf.steps,
        submission: doc,
        eventClusterTime: input.clusterTime,
        eventWallTime: input.wallTime,
        createdAt: opts.now,
        updatedAt: opts.now,
      });
    }
  }
  return plan;
}

export interface WriteResult {
  created: number;
  duplicates: number;
  roundTrips: number;
}

/**
 * One unordered bulk upsert for all jobs. Existing keys are "already there" (and remember that this
 * path saw them); a duplicate-key race between two writers is retried once as a plain update.
 */
export async function writeJobs(db: Db, jobs: readonly JobDoc[], path: TriggerPath): Promise<WriteResult> {
  if (jobs.length === 0) return { created: 0, duplicates: 0, roundTrips: 0 };
  const coll = db.collection<JobDoc>(COLLECTIONS.jobs);
  const ops: AnyBulkWriteOperation<JobDoc>[] = jobs.map((job) => {
    const { seenBy: _seen, ...insertOnly } = job;
    return { updateOne: { filter: { key: job.key }, update: { $setOnInsert: insertOnly, $addToSet: { seenBy: path } }, upsert: true } };
  });
  try {
    const res = await coll.bulkWrite(ops, { ordered: false });
    assertAllAcknowledged(res.upsertedCount + res.matchedCount, jobs.length);
    return { created: res.upsertedCount, duplicates: res.matchedCount, roundTrips: 1 };
  } catch (error) {
    // Only a bulk error made entirely of duplicate-key races is "already there"; a command-level
    // error (no writeErrors: network, shutdown, fail point) means nothing is known and is rethrown.
    const raced = duplicateKeyRaces(error, jobs.length);
    if (!raced) throw error;
    const result = (error as MongoBulkWriteError).result;
    assertAllAcknowledged(result.upsertedCount + result.matchedCount + raced.length, jobs.length);
    await coll.updateMany({ key: { $in: raced.map((i) => jobs[i]!.key) } }, { $addToSet: { seenBy: path } });
    return { created: result.upsertedCount, duplicates: jobs.length - result.upsertedCount, roundTrips: 2 };
  }
}

/** Indexes of the operations that lost a duplicate-key race, or null if the error is anything else. */
function duplicateKeyRaces(error: unknown, total: number): number[] | null {
  if (!(error instanceof MongoBulkWriteError) || error.writeConcernError) return null;
  const errors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
  if (errors.length === 0 || errors.some((e) => e.code !== 11000 || e.index < 0 || e.index >= total)) return null;
  return errors.map((e) => e.index);
}

/** A write that acknowledges fewer operations than were sent must not count as dispatched. */
function assertAllAcknowledged(acknowledged: number, sent: number): void {
  if (acknowledged !== sent) {
    throw new AppError('dispatch_incomplete', `bulk write acknowledged ${acknowledged} of ${sent} jobs`, 503);
  }
}

/** Dead-letter poison events, once each (keyed by stream and event identity). */
export async function writeDeadLetters(
  db: Db,
  streamId: string,
  orgId: string | null,
  poison: readonly PoisonEvent[],
  now: Date,
): Promise<number> {
  if (poison.length === 0) return 0;
  const coll = db.collection<DeadLetterDoc>(COLLECTIONS.deadLetters);
  const ops: AnyBulkWriteOperation<DeadLetterDoc>[] = poison.map((p) => {
    const key = `${streamId}:${p.input.eventId ?? String((p.input.document as { _id?: unknown } | null)?._id)}`;
    const doc: DeadLetterDoc = {
      key,
      streamId,
      organizationId: orgId ?? (typeof p.input.document?.organizationId === 'string' ? p.input.document.organizationId : null),
      reason: p.reason,
      code: p.code,
      documentKey: p.input.documentKey ?? (p.input.document ? { _id: p.input.document._id } : null),
      operationType: p.input.operationType,
      clusterTime: p.input.clusterTime,
      event: describeForDeadLetter(p.input),
      createdAt: now,
      replayedAt: null,
    };
    return { updateOne: { filter: { key }, update: { $setOnInsert: doc }, upsert: true } };
  });
  try {
    await coll.bulkWrite(ops, { ordered: false });
  } catch (error) {
    if (!duplicateKeyRaces(error, ops.length)) throw error;
  }
  return poison.length;
}

/** Keep the whole event unless it is too large to store; then keep what identifies it. */
function describeForDeadLetter(input: DispatchInput): unknown {
  if (input.document && BSON.calculateObjectSize(input.document) > MAX_SUBMISSION_BYTES) {
    return { truncated: true, _id: input.document._id, organizationId: input.document.organizationId, formId: input.document.formId };
  }
  return input.document;
}
