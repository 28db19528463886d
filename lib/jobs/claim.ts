import { randomUUID } from 'node:crypto';
import type { Collection, Db, Filter } from 'mongodb';
import { COLLECTIONS } from '../data/mongo.js';
import type { ProcessedJobDoc } from '../data/documents.js';
import type { Claim } from './types.js';

export function jobsCollection(db: Db): Collection<ProcessedJobDoc> {
  return db.collection<ProcessedJobDoc>(COLLECTIONS.jobs);
}

/**
 * Jobs a processor may claim at `now`: queued and due, or running with an expired lease (the
 * processor running it died) and attempts left. An abandoned job without attempts left is not
 * claimable; `deadAbandoned` moves it to `dead` instead of letting a crash loop run forever.
 */
export function dueFilter(now: Date, maxAttempts: number): Filter<ProcessedJobDoc> {
  return {
    $or: [
      { status: 'queued', runAt: { $lte: now } },
      { status: 'running', 'lease.expiresAt': { $lt: now }, attempts: { $lt: maxAttempts } },
    ],
  };
}

export interface ClaimOptions {
  owner: string;
  now: Date;
  /** JOB_LEASE_MS */
  leaseMs: number;
  /** JOB_MAX_ATTEMPTS */
  maxAttempts: number;
}

/**
 * Atomically claim the due job with the earliest `runAt`: one findOneAndUpdate, so of several processors racing for a job
 * exactly one gets it, with `attempts` incremented and a lease carrying a fresh token.
 * Returns null when nothing is due.
 */
export async function claimJob(db: Db, opts: ClaimOptions): Promise<{ claim: Claim; job: ProcessedJobDoc } | null> {
  const expiresAt = new Date(opts.now.getTime() + opts.leaseMs);
  const lease = { owner: opts.owner, expiresAt, token: randomUUID() };
  const filter: Filter<ProcessedJobDoc> = dueFilter(opts.now, opts.maxAttempts);
  // The pre-image tells whether the previous attempt was abandoned; the post-image is fully
  // determined by the update below, so it is rebuilt rather than read a second time.
  const before = await jobsCollection(db).findOneAndUpdate(
    filter,
    {
      $set: { status: 'running', lease, startedAt: opts.now, updatedAt: opts.now },
      $inc: { attempts: 1 },
    },
    { sort: { runAt: 1 }, returnDocument: 'before' },
  );
  if (!before) return null;
  const attempt = (before.attempts ?? 0) + 1;
  const job: ProcessedJobDoc = { ...before, status: 'running', lease, attempts: attempt, startedAt: opts.now, updatedAt: opts.now };
  return {
    claim: {
      jobId: before._id,
      owner: opts.owner,
      token: lease.token,
      attempt,
      leaseExpiresAt: expiresAt,
      reclaimed: before.status === 'running',
    },
    job,
  };
}

/**
 * The filter every write for a claimed attempt must use. A processor whose lease expired and
 * whose job was claimed again matches nothing, so its late result is dropped, never recorded.
 */
export function fenceFilter(claim: Claim): Filter<ProcessedJobDoc> {
  return {
    _id: claim.jobId,
    status: 'running',
    'lease.owner': claim.owner,
    'lease.token': claim.token,
    attempts: claim.attempt,
  };
}

/**
 * Running jobs whose lease expired on their last allowed attempt go to `dead`: the attempt never
 * reported back (the processor crashed or hung), and re-running it past JOB_MAX_ATTEMPTS could
 * loop forever on a job that crashes its processor. Returns how many were moved.
 */
export async function deadAbandoned(db: Db, now: Date, maxAttempts: number): Promise<number> {
  const result = await jobsCollection(db).updateMany(
    { status: 'running', 'lease.expiresAt': { $lt: now }, attempts: { $gte: maxAttempts } },
    {
      $set: {
        status: 'dead',
        deadReason: 'lease_expired',
        lease: null,
        finishedAt: now,
        updatedAt: now,
        lastError: {
          code: 'lease_expired',
          message: 'the last attempt did not report back before its lease expired (processor stopped or hung) and no attempts remain',
          retryable: true,
          at: now,
        },
      },
    },
  );
  return result.modifiedCount;
}
