import type { ObjectId } from 'mongodb';
import type { JobDoc } from '../data/documents.js';

/** The error a finished or retried attempt leaves on the job. */
export interface JobError {
  message: string;
  code: string;
  retryable: boolean;
  at: Date;
}

/**
 * `workflow_jobs` as the processor reads and writes it: the shared JobDoc plus optional fields that
 * only the processor uses. Jobs created before these fields existed simply lack them.
 */
export interface ProcessedJobDoc extends Omit<JobDoc, 'lease' | 'lastError'> {
  _id: ObjectId;
  /**
   * `token` is unique per claim. Together with `attempts` it fences every later write, even after
   * a replay reset `attempts` to 0 and the same processor claims the job again.
   */
  lease: { owner: string; expiresAt: Date; token?: string } | null;
  lastError: JobError | null;
  /** Steps that already succeeded; a retry resumes at this index instead of repeating them. Default 0. */
  completedSteps?: number;
  /** Errors of earlier lives of the job, kept when a dead job is replayed (newest last, at most 20). */
  previousErrors?: JobError[];
  /** Why the job is `dead` (set with it). */
  deadReason?: 'non_retryable' | 'attempts_exhausted' | 'lease_expired';
  /** How many times the job was replayed from `dead`. */
  replays?: number;
  replayedAt?: Date | null;
  /**
   * Id of the last fenced write recorded for this attempt when writes are batched
   * (lib/jobs/result-batch.ts): a bulk write reports only totals, this tells which writes matched.
   */
  lastWriteId?: string;
  /** How many times a succeeded job was delivered again on purpose (`redeliver`). */
  redeliveries?: number;
  /** Manual requeues of the job, newest last (at most 20): replays from `dead` and deliberate redeliveries. */
  history?: JobHistoryEvent[];
}

/** One manual requeue recorded on a job. */
export interface JobHistoryEvent {
  kind: 'replay' | 'manual_redelivery';
  at: Date;
  /** The status the job had when it was requeued. */
  previousStatus: string;
  /** Set on a redelivery: when the earlier delivery had finished. */
  previousFinishedAt?: Date | null;
  /** True when the replay replaced the job's steps with its workflow's current ones. */
  stepsReplaced?: boolean;
}

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
  /** Running jobs with an expired lease and no attempts left, moved to `dead` at the start. */
  abandonedDead: number;
  stoppedBy: 'deadline' | 'drained';
  /** Due jobs remain: the caller should publish a continuation. */
  moreDue: boolean;
  durationMs: number;
  /** MongoDB commands this run sent (claims, result writes, the checks at start and end). */
  roundTrips: number;
  /** Jobs claimed in a batch but not started before the deadline, given back untouched. */
  released: number;
}
