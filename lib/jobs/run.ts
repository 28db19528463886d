import { ObjectId, type Filter } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import { classifyStepError, type ClassifiedStepError } from './errors.js';
import { recordFailure, recordStepProgress, recordSuccess, type RetryPolicy } from './complete.js';
import { resolveSteps, type StepRegistry } from './steps.js';
import { clockTimer, untilAborted } from '../platform/deadline.js';
import type { AttemptOutcome, Claim, ProcessedJobDoc } from './types.js';

/** Why the processor itself cut an attempt short. */
export class AttemptStopped extends Error {
  override readonly name = 'AttemptStopped';
  constructor(readonly code: 'deadline' | 'lease_expiring', message: string) {
    super(message);
  }
}

/** Everything running one claimed attempt needs; built once per invocation. */
export interface AttemptRunner {
  ctx: AppContext;
  registry: StepRegistry;
  fetch: typeof fetch;
  policy: RetryPolicy;
  /** Epoch ms of the invocation's deadline; no step runs past it. */
  deadlineAt: number;
}

/** How long before its lease ends an attempt gives up, so its own result is written while it still owns the job. */
export function leaseMarginMs(leaseMs: number): number {
  return Math.min(2_000, Math.floor(leaseMs / 10));
}

/** Retry policy from the config, with an optional random source for the jitter. */
export function retryPolicyFrom(ctx: AppContext, random?: () => number): RetryPolicy {
  return {
    maxAttempts: ctx.config.JOB_MAX_ATTEMPTS,
    baseMs: ctx.config.JOB_BACKOFF_BASE_MS,
    maxMs: ctx.config.JOB_BACKOFF_MAX_MS,
    ...(random ? { random } : {}),
  };
}

/**
 * Run the steps of a claimed job in order, from the first one not yet completed, and record the
 * result with writes fenced on the claim. The attempt is bounded by the invocation's deadline and
 * by the lease: whichever comes first aborts the step's signal, and the processor stops waiting.
 */
export async function runClaimed(runner: AttemptRunner, claim: Claim, job: ProcessedJobDoc): Promise<AttemptOutcome> {
  const { ctx } = runner;
  const { clock, log } = ctx;
  const leaseEnd = claim.leaseExpiresAt.getTime() - leaseMarginMs(ctx.config.JOB_LEASE_MS);
  const stopAt = Math.min(runner.deadlineAt, leaseEnd);
  const guard = clockTimer(clock, stopAt - clock.now(), () =>
    stopAt === runner.deadlineAt
      ? new AttemptStopped('deadline', 'attempt stopped at the invocation deadline before its steps finished')
      : new AttemptStopped('lease_expiring', 'attempt stopped before its lease expired; its steps did not finish in time'),
  );
  try {
    const steps = resolveSteps(runner.registry, job.steps);
    for (let index = job.completedSteps ?? 0; index < steps.length; index++) {
      const { step, def } = steps[index]!;
      await untilAborted(
        def.run(step, { job, attempt: claim.attempt, stepIndex: index, signal: guard.signal, fetch: runner.fetch, clock, config: ctx.config, log }),
        guard.signal,
      );
      if (index < steps.length - 1 && !(await recordStepProgress(ctx.db, claim, index + 1, new Date(clock.now())))) {
        return lost(ctx, job, claim);
      }
    }
    if (!(await recordSuccess(ctx.db, claim, new Date(clock.now())))) return lost(ctx, job, claim);
    log.debug('job succeeded', { key: job.key, attempt: claim.attempt });
    return 'succeeded';
  } catch (thrown) {
    const stopped = guard.signal.aborted ? (guard.signal.reason as AttemptStopped) : null;
    const error: ClassifiedStepError = stopped
      ? { code: stopped.code, message: stopped.message, retryable: true, retryAfterMs: undefined }
      : classifyStepError(thrown);
    const outcome = await recordFailure(ctx.db, claim, error, runner.policy, new Date(clock.now()), stopped !== null);
    if (outcome === 'lost') return lost(ctx, job, claim);
    const fields = { key: job.key, attempt: claim.attempt, code: error.code, retryable: error.retryable };
    if (outcome === 'dead') log.warn('job dead', { ...fields, reason: error.message });
    else log.info('job attempt failed; retry scheduled', fields);
    return outcome;
  } finally {
    guard.cancel();
  }
}

function lost(ctx: AppContext, job: ProcessedJobDoc, claim: Claim): 'lost' {
  ctx.log.warn('job claim lost: another processor owns the job; result not recorded', { key: job.key, attempt: claim.attempt });
  return 'lost';
}

/** A job named by its key or its `_id` (24 hex digits). */
export function jobRef(idOrKey: string): Filter<ProcessedJobDoc> {
  return ObjectId.isValid(idOrKey) && /^[0-9a-f]{24}$/i.test(idOrKey)
    ? { $or: [{ key: idOrKey }, { _id: new ObjectId(idOrKey) }] }
    : { key: idOrKey };
}
