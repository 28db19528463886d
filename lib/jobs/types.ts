import type { ObjectId } from 'mongodb';

/** The processor's own types; the documents it reads and writes are in lib/data/documents.ts. */

/** What a claim hands to the code that runs the attempt; every write for it must present it. */
export interface Claim {
  jobId: ObjectId;
  owner: string;
  token: string;
  /** The attempt number this claim stands for (1-based). */
  attempt: number;
  leaseExpiresAt: Date;
  /** True when the previous attempt was abandoned (its lease expired while `running`). */
  reclaimed: boolean;
}

/** How one attempt ended from the job's point of view. `lost`: a newer claim owns the job; nothing was written. */
export type AttemptOutcome = 'succeeded' | 'retried' | 'dead' | 'lost';

/** What one `processJobs` invocation did. */
export interface ProcessSummary {
  /** Lease owner used by this invocation. */
  owner: string;
  claimed: number;
  succeeded: number;
  retried: number;
  dead: number;
  /** Attempts whose result could not be recorded because another processor owns the job now. */
  lost: number;
  /** Claims of jobs whose previous attempt was abandoned (lease expired while running). */
  reclaimed: number;
  /** Running jobs with an expired lease and no attempts left, moved to `dead` at the start (a lead's run only, not a lane's). */
  abandonedDead: number;
  stoppedBy: 'deadline' | 'drained';
  /** Due jobs remain: the caller should publish a continuation. Not counted (false) for a lane. */
  moreDue: boolean;
  durationMs: number;
  /** MongoDB commands this run sent (claims, result writes, the checks at start and end). */
  roundTrips: number;
  /** Jobs claimed in a batch but not started before the deadline, given back untouched. */
  released: number;
}
