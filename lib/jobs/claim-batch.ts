import { randomUUID } from 'node:crypto';
import { ObjectId, type AnyBulkWriteOperation, type Db, type Filter } from 'mongodb';
import { dueFilter, jobsCollection } from './claim.js';
import { blockedByOrder } from './ordering.js';
import type { ProcessedJobDoc } from '../data/documents.js';
import type { Claim } from './types.js';

export interface BatchClaimOptions {
  owner: string;
  now: Date;
  /** JOB_LEASE_MS */
  leaseMs: number;
  /** JOB_MAX_ATTEMPTS */
  maxAttempts: number;
  /** Most jobs to claim in this call (1–1,000). */
  limit: number;
  /** Picks which candidates of the window to claim; default Math.random. */
  random?: () => number;
  /** `_id`s (hex) not to read as candidates: jobs this run already found held back by ordering. */
  exclude?: ReadonlySet<string>;
}

/** One claimed job: the claim every later write presents, and the job as it stands after the claim. */
export interface ClaimedJob {
  claim: Claim;
  job: ProcessedJobDoc;
}

/** The fields a candidate is read with: what the compare-and-set filter and the ordering rule need. */
const CANDIDATE_FIELDS = { _id: 1, status: 1, attempts: 1, completedSteps: 1, 'lease.token': 1, runAt: 1, workflowId: 1, submissionId: 1, event: 1, eventClusterTime: 1, createdAt: 1 } as const;

/** Candidates are read from the earliest `limit × WINDOW_FACTOR` due jobs. */
const WINDOW_FACTOR = 4;

/**
 * `limit` consecutive candidates from a random start in the window (all of them when the window
 * is no larger). Processors racing over one queue then mostly try different jobs instead of all
 * the same earliest ones, while every pick stays among the earliest due jobs.
 */
function pick<T>(window: T[], limit: number, random: () => number): T[] {
  if (window.length <= limit) return window;
  const start = Math.floor(Math.min(Math.max(random(), 0), 0.999999) * (window.length - limit + 1));
  return window.slice(start, start + limit);
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
  /** MongoDB commands sent: 3, or 4 when the ordering rule had to be checked; 1 when nothing was due. */
  roundTrips: number;
}

/**
 * Claim up to `limit` due jobs in 3 round trips (4 when the ordering rule must be checked), each
 * with its own lease token, exactly as fenced as a `claimJob` claim.
 *
 * 1. `find` the earliest due jobs (the same `dueFilter` and `runAt` order as `claimJob`), a window
 *    of `limit × 4`, reading only the fields the claim needs, and take `limit` consecutive ones
 *    from a random start in it, so that racing processors mostly try different jobs.
 * 2. One unordered `bulkWrite` of conditional `updateOne`s, one per candidate. Each filter is a
 *    compare-and-set on the candidate as it was read: its `_id`, `status`, `attempts`,
 *    `completedSteps`, its current lease token (running jobs) and the due condition re-checked at
 *    `now`. The update sets `status: 'running'`, a lease with a fresh per-job token, and `$inc`s
 *    `attempts`.
 * 3. `find` the candidates that carry one of the new tokens: the claims that held, in full.
 *
 * Why this is safe with any number of processors racing (each step is MongoDB's, not ours):
 * - A single-document update is atomic in MongoDB, so of several processors whose conditional
 *   updates target one job, the first to apply changes `status`/`attempts`/`lease` and every
 *   later one no longer matches its own filter: at most one claim per job and attempt holds.
 * - A processor knows which of its claims held: the documents whose stored lease carries its
 *   token (tokens are random UUIDs, never reused).
 * - The job it runs is the job as stored after its claim: read in step 3, after the claim, and
 *   nothing changes a claimed job without presenting its token (every result write is fenced on
 *   it; the dead-letter sweep and replay touch only expired leases and dead jobs).
 * - Results are fenced as before (`fenceFilter`: owner, this claim's token, its attempt), so a
 *   stale processor's late result is refused exactly as with `claimJob`.
 * A job that went back to the very state that was read (e.g. replayed from `dead` to `queued`
 * with the same attempts and completed steps) is claimed as if read just now.
 */
export async function claimDueJobs(db: Db, opts: BatchClaimOptions): Promise<BatchClaimResult> {
  const jobs = jobsCollection(db);
  const limit = Math.max(1, Math.min(1_000, Math.floor(opts.limit)));
  const due = dueFilter(opts.now, opts.maxAttempts);
  const skip = opts.exclude && opts.exclude.size > 0 ? [...opts.exclude].map((id) => new ObjectId(id)) : null;
  const window = await jobs
    .find(skip ? { $and: [due, { _id: { $nin: skip } }] } : due, { projection: CANDIDATE_FIELDS })
    .sort({ runAt: 1 })
    .limit(Math.min(1_000, limit * WINDOW_FACTOR))
    .toArray();
  const result: BatchClaimResult = { claimed: [], candidates: window.length, blocked: 0, blockedIds: [], raced: 0, roundTrips: 1 };
  if (window.length === 0) return result;
  const read = pick(window, limit, opts.random ?? Math.random);

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
  await jobs.bulkWrite(
    planned.map((p) => p.op),
    { ordered: false },
  );
  result.roundTrips++;
  // Which claims held, and the claimed jobs in full, in one read: a document carrying one of this
  // batch's tokens was claimed by this batch, and nobody else can change it without that token.
  const stored = await jobs.find({ _id: { $in: planned.map((p) => p.before._id) }, 'lease.token': { $in: planned.map((p) => p.lease.token) } }).toArray();
  result.roundTrips++;
  const byToken = new Map(stored.map((doc) => [doc.lease?.token, doc]));
  for (const { before, lease } of planned) {
    const job = byToken.get(lease.token);
    if (!job) continue;
    result.claimed.push({
      claim: { jobId: job._id, owner: opts.owner, token: lease.token, attempt: job.attempts, leaseExpiresAt: expiresAt, reclaimed: before.status === 'running' },
      job,
    });
  }
  result.raced = planned.length - result.claimed.length;
  return result;
}
