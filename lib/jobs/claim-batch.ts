import { randomUUID } from 'node:crypto';
import { ObjectId, type AnyBulkWriteOperation, type Db, type Filter } from 'mongodb';
import { dueFilter, jobsCollection } from './claim.js';
import { blockedByOrder } from './ordering.js';
import type { Claim, ProcessedJobDoc } from './types.js';

export interface BatchClaimOptions {
  owner: string;
  now: Date;
  /** JOB_LEASE_MS */
  leaseMs: number;
  /** JOB_MAX_ATTEMPTS */
  maxAttempts: number;
  /** Most jobs to claim in this call (1–1,000). */
  limit: number;
  /** `_id`s (hex) not to read as candidates: jobs this run already found held back by ordering. */
  exclude?: ReadonlySet<string>;
}

/** One claimed job: the claim every later write presents, and the job as it stands after the claim. */
export interface ClaimedJob {
  claim: Claim;
  job: ProcessedJobDoc;
}

export interface BatchClaimResult {
  claimed: ClaimedJob[];
  /** Due jobs read as candidates (before ordering and races removed some). 0: nothing was due. */
  candidates: number;
  /** Candidates left alone because an earlier job of the same workflow and submission is unfinished. */
  blocked: number;
  /** Their `_id`s (hex). */
  blockedIds: string[];
  /** Candidates another processor claimed between the read and the claim. */
  raced: number;
  /** MongoDB commands sent: 2 when every claim held, 3 when some raced, +1 when ordering had to be checked. */
  roundTrips: number;
}

/**
 * Claim up to `limit` due jobs in 2 round trips (3 when another processor raced for some of them),
 * each with its own lease token, exactly as fenced as a `claimJob` claim.
 *
 * 1. `find` the earliest due jobs (the same `dueFilter` and `runAt` order as `claimJob`).
 * 2. One unordered `bulkWrite` of conditional `updateOne`s, one per candidate. Each filter is a
 *    compare-and-set on the candidate as it was read: its `_id`, its `status`, its `attempts`, its
 *    `completedSteps`, its current lease token (running jobs) and the due condition re-checked at
 *    `now`. The update sets `status: 'running'`, a lease with a fresh per-job token, and `$inc`s
 *    `attempts`.
 * 3. Only when the bulk write matched fewer documents than it had operations: `find` the
 *    candidates carrying one of the new tokens, to learn which claims held.
 *
 * Why this is safe with any number of processors racing (each step is MongoDB's, not ours):
 * - A single-document update is atomic in MongoDB, so of several processors whose conditional
 *   updates target one job, the first to apply changes `status`/`attempts`/`lease` and every
 *   later one no longer matches its own filter: at most one claim per job and attempt holds.
 * - A processor knows which of its claims held: all of them when `matchedCount` equals the number
 *   of operations (each filter names one `_id`, so each operation matches at most one document),
 *   otherwise the ones whose stored lease carries its token (tokens are random UUIDs, never reused).
 * - The job it runs is the job it claimed: the steps, submission and key of a job are written once
 *   when it is created (`$setOnInsert`), and every field that changes after that and matters to
 *   the attempt (`status`, `attempts`, `completedSteps`, the lease) is part of the compare-and-set
 *   filter. So the document read in step 1 plus the update of step 2 is exactly the stored job.
 * - Results are fenced as before (`fenceFilter`: owner, this claim's token, its attempt), so a
 *   stale processor's late result is refused exactly as with `claimJob`.
 * A job that went back to the very state that was read (e.g. replayed from `dead` to
 * `queued` with the same attempts and completed steps) is claimed as if read just now: its state
 * is the same in every field the attempt depends on.
 */
export async function claimDueJobs(db: Db, opts: BatchClaimOptions): Promise<BatchClaimResult> {
  const jobs = jobsCollection(db);
  const limit = Math.max(1, Math.min(1_000, Math.floor(opts.limit)));
  const due = dueFilter(opts.now, opts.maxAttempts);
  const skip = opts.exclude && opts.exclude.size > 0 ? [...opts.exclude].map((id) => new ObjectId(id)) : null;
  const read = await jobs.find(skip ? { $and: [due, { _id: { $nin: skip } }] } : due).sort({ runAt: 1 }).limit(limit).toArray();
  const result: BatchClaimResult = { claimed: [], candidates: read.length, blocked: 0, blockedIds: [], raced: 0, roundTrips: 1 };
  if (read.length === 0) return result;

  const order = await blockedByOrder(db, read);
  result.roundTrips += order.roundTrips;
  const candidates = read.filter((job) => !order.blocked.has(job._id.toHexString()));
  result.blocked = read.length - candidates.length;
  result.blockedIds = [...order.blocked];
  if (candidates.length === 0) return result;

  const expiresAt = new Date(opts.now.getTime() + opts.leaseMs);
  const planned = candidates.map((before) => {
    const lease = { owner: opts.owner, expiresAt, token: randomUUID() };
    // `null` matches a missing field too: jobs start without `completedSteps`.
    const steps = (before.completedSteps ?? null) as number;
    const filter: Filter<ProcessedJobDoc> =
      before.status === 'queued'
        ? { _id: before._id, status: 'queued', runAt: { $lte: opts.now }, attempts: before.attempts, completedSteps: steps }
        : {
            _id: before._id,
            status: 'running',
            'lease.token': before.lease?.token ?? null,
            'lease.expiresAt': { $lt: opts.now },
            attempts: before.attempts,
            completedSteps: steps,
          };
    const op: AnyBulkWriteOperation<ProcessedJobDoc> = {
      updateOne: { filter, update: { $set: { status: 'running', lease, startedAt: opts.now, updatedAt: opts.now }, $inc: { attempts: 1 } } },
    };
    return { before, lease, op };
  });
  // Attempts already at the limit are not claimable (dueFilter); a queued job never is at it.
  const write = await jobs.bulkWrite(
    planned.map((p) => p.op),
    { ordered: false },
  );
  result.roundTrips++;
  let held = planned;
  if (write.matchedCount < planned.length) {
    const tokens = await jobs
      .find({ _id: { $in: planned.map((p) => p.before._id) }, 'lease.token': { $in: planned.map((p) => p.lease.token) } }, { projection: { _id: 0, 'lease.token': 1 } })
      .toArray();
    result.roundTrips++;
    const won = new Set(tokens.map((t) => t.lease?.token));
    held = planned.filter((p) => won.has(p.lease.token));
    result.raced = planned.length - held.length;
  }
  for (const { before, lease } of held) {
    const attempt = (before.attempts ?? 0) + 1;
    result.claimed.push({
      claim: { jobId: before._id, owner: opts.owner, token: lease.token, attempt, leaseExpiresAt: expiresAt, reclaimed: before.status === 'running' },
      job: { ...before, status: 'running', lease, attempts: attempt, startedAt: opts.now, updatedAt: opts.now },
    });
  }
  return result;
}
