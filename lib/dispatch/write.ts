import { BSON, MongoBulkWriteError, type AnyBulkWriteOperation, type Db } from 'mongodb';
import { encodeSubmissionId } from '../data/submission-id.js';
import { COLLECTIONS } from '../data/mongo.js';
import { AppError } from '../platform/errors.js';
import type { JobDoc, JobOrigin } from '../data/documents.js';
import type { DeadLetterDoc } from '../data/documents.js';
import { DispatchInput } from './events.js';
import { MAX_SUBMISSION_BYTES, PoisonEvent } from './plan.js';

/** Writing a dispatch plan: jobs inserted once by their job key, poison events to dead letters. */

export interface WriteResult {
  created: number;
  duplicates: number;
  roundTrips: number;
}

/**
 * One unordered bulk upsert for all jobs. Existing keys are "already there" (and remember that this
 * path saw them); a duplicate-key race between two writers is retried once as a plain update.
 */
export async function writeJobs(db: Db, jobs: readonly JobDoc[], path: JobOrigin): Promise<WriteResult> {
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
    throw new AppError('dispatch_incomplete', `bulk write acknowledged ${acknowledged} of ${sent} jobs`);
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
    const key = `${streamId}:${p.input.eventId ?? encodeSubmissionId((p.input.document as { _id?: unknown } | null)?._id ?? null)}`;
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
