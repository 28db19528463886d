import type { Db, UpdateFilter } from 'mongodb';
import { backoffDelayMs, type BackoffPolicy } from './backoff.js';
import { fenceFilter, jobsCollection } from './claim.js';
import type { ClassifiedStepError } from './errors.js';
import type { JobError, ProcessedJobDoc } from '../data/documents.js';
import type { AttemptOutcome, Claim } from './types.js';

export interface RetryPolicy extends BackoffPolicy {
  /** JOB_MAX_ATTEMPTS */
  maxAttempts: number;
}

/** What a failed attempt leads to; pure, so the policy is tested without a database. */
export type FailureDecision =
  | { status: 'queued'; delayMs: number }
  | { status: 'dead'; reason: 'non_retryable' | 'attempts_exhausted' };

/**
 * `immediate` (the attempt was cut short by the processor's own deadline or lease, not by the
 * receiver) retries without backoff: nothing suggests the receiver needs a pause.
 */
export function decideFailure(attempt: number, error: ClassifiedStepError, policy: RetryPolicy, immediate = false): FailureDecision {
  if (!error.retryable) return { status: 'dead', reason: 'non_retryable' };
  if (attempt >= policy.maxAttempts) return { status: 'dead', reason: 'attempts_exhausted' };
  return { status: 'queued', delayMs: immediate ? 0 : backoffDelayMs(attempt, policy, error.retryAfterMs) };
}

/** The update that records success (apply it fenced on the claim). */
export function successUpdate(now: Date): UpdateFilter<ProcessedJobDoc> {
  return { $set: { status: 'succeeded', lease: null, finishedAt: now, updatedAt: now } };
}

/** The update that remembers `completedSteps` finished steps (apply it fenced on the claim). */
export function progressUpdate(completedSteps: number, now: Date): UpdateFilter<ProcessedJobDoc> {
  return { $set: { completedSteps, updatedAt: now } };
}

/**
 * The update that records a failed attempt, and what it leads to: back to `queued` after a backoff,
 * or `dead` with the error kept (apply it fenced on the claim).
 */
export function failureUpdate(
  claim: Claim,
  error: ClassifiedStepError,
  policy: RetryPolicy,
  now: Date,
  immediate = false,
): { update: UpdateFilter<ProcessedJobDoc>; outcome: 'retried' | 'dead' } {
  const decision = decideFailure(claim.attempt, error, policy, immediate);
  const message =
    decision.status === 'dead' && decision.reason === 'attempts_exhausted'
      ? `${error.message} (attempt ${claim.attempt} of ${policy.maxAttempts}; no attempts left)`
      : error.message;
  const lastError: JobError = { message, code: error.code, retryable: error.retryable, at: now };
  const set =
    decision.status === 'queued'
      ? { status: 'queued' as const, runAt: new Date(now.getTime() + decision.delayMs), lease: null, lastError, updatedAt: now }
      : { status: 'dead' as const, deadReason: decision.reason, lease: null, lastError, finishedAt: now, updatedAt: now };
  return { update: { $set: set }, outcome: decision.status === 'queued' ? 'retried' : 'dead' };
}

/** Record success; false when the claim was lost (another processor owns the job now). */
export async function recordSuccess(db: Db, claim: Claim, now: Date): Promise<boolean> {
  const result = await jobsCollection(db).updateOne(fenceFilter(claim), successUpdate(now));
  return result.matchedCount === 1;
}

/** Remember finished steps so that a retry does not repeat them; false when the claim was lost. */
export async function recordStepProgress(db: Db, claim: Claim, completedSteps: number, now: Date): Promise<boolean> {
  const result = await jobsCollection(db).updateOne(fenceFilter(claim), progressUpdate(completedSteps, now));
  return result.matchedCount === 1;
}

/** Record a failed attempt: back to `queued` after a backoff, or `dead` with the error kept. */
export async function recordFailure(
  db: Db,
  claim: Claim,
  error: ClassifiedStepError,
  policy: RetryPolicy,
  now: Date,
  immediate = false,
): Promise<Exclude<AttemptOutcome, 'succeeded'>> {
  const { update, outcome } = failureUpdate(claim, error, policy, now, immediate);
  const result = await jobsCollection(db).updateOne(fenceFilter(claim), update);
  return result.matchedCount === 1 ? outcome : 'lost';
}
