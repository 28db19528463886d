import { setMaxListeners } from 'node:events';
import type { AppContext } from '../platform/context.js';
import { classifyStepError, type ClassifiedStepError } from './errors.js';
import { failureUpdate, progressUpdate, recordFailure, recordStepProgress, recordSuccess, successUpdate, type RetryPolicy } from './complete.js';
import type { ResultBatcher } from './result-batch.js';
import { resolveSteps, type StepRegistry } from './steps.js';
import { clockTimer, untilAborted, type ClockTimer } from '../platform/deadline.js';
import type { ProcessedJobDoc } from '../data/documents.js';
import type { AttemptOutcome, Claim } from './types.js';

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
  /** When set, results and step progress go through it (batched) instead of one `updateOne` each. */
  writer?: ResultBatcher;
  /**
   * When set, attempts with the same stop time share one guard timer (the jobs of one claim batch
   * share their lease end); the owner cancels them all with `cancelGuards` when the run ends.
   */
  guards?: Map<number, ClockTimer>;
}

/** Cancel the shared guard timers of a runner (see `AttemptRunner.guards`). */
export function cancelGuards(runner: AttemptRunner): void {
  for (const guard of runner.guards?.values() ?? []) guard.cancel();
  runner.guards?.clear();
}

function guardFor(runner: AttemptRunner, stopAt: number): { guard: ClockTimer; shared: boolean } {
  const { clock } = runner.ctx;
  const make = () =>
    clockTimer(clock, stopAt - clock.now(), () =>
      stopAt === runner.deadlineAt
        ? new AttemptStopped('deadline', 'attempt stopped at the invocation deadline before its steps finished')
        : new AttemptStopped('lease_expiring', 'attempt stopped before its lease expired; its steps did not finish in time'),
    );
  if (!runner.guards) return { guard: make(), shared: false };
  let guard = runner.guards.get(stopAt);
  if (!guard) {
    runner.guards.set(stopAt, (guard = make()));
    // Every running attempt of the batch listens on it (two listeners each): not a leak.
    setMaxListeners(0, guard.signal);
  }
  return { guard, shared: true };
}

/** How the steps of an attempt ended, before the result is recorded. */
export type StepsResult =
  | { kind: 'succeeded' }
  | { kind: 'failed'; error: ClassifiedStepError; immediate: boolean }
  | { kind: 'lost' };

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
 * Run the steps of a claimed job in order, from the first one not yet completed, bounded by the
 * invocation's deadline and by the lease (whichever comes first aborts the step's signal). Records
 * progress between steps (fenced on the claim) and says how they ended, without recording the final
 * result (`recordResult` does). Never throws for a step's failure.
 */
export async function runSteps(runner: AttemptRunner, claim: Claim, job: ProcessedJobDoc): Promise<StepsResult> {
  const { ctx } = runner;
  const { clock, log } = ctx;
  const leaseEnd = claim.leaseExpiresAt.getTime() - leaseMarginMs(ctx.config.JOB_LEASE_MS);
  const stopAt = Math.min(runner.deadlineAt, leaseEnd);
  const { guard, shared } = guardFor(runner, stopAt);
  try {
    const steps = resolveSteps(runner.registry, job.steps);
    for (let index = job.completedSteps ?? 0; index < steps.length; index++) {
      const { step, def } = steps[index]!;
      await untilAborted(
        def.run(step, { job, attempt: claim.attempt, stepIndex: index, signal: guard.signal, fetch: runner.fetch, clock, config: ctx.config, log }),
        guard.signal,
      );
      if (index < steps.length - 1) {
        const now = new Date(clock.now());
        const kept = runner.writer ? await runner.writer.write(claim, progressUpdate(index + 1, now)) : await recordStepProgress(ctx.db, claim, index + 1, now);
        if (!kept) return { kind: 'lost' };
      }
    }
    return { kind: 'succeeded' };
  } catch (thrown) {
    const stopped = guard.signal.aborted ? (guard.signal.reason as AttemptStopped) : null;
    const error: ClassifiedStepError = stopped
      ? { code: stopped.code, message: stopped.message, retryable: true, retryAfterMs: undefined }
      : classifyStepError(thrown);
    return { kind: 'failed', error, immediate: stopped !== null };
  } finally {
    if (!shared) guard.cancel();
  }
}

/** Record how the steps ended (fenced on the claim) and log it; `lost` when the claim was lost. */
export async function recordResult(runner: AttemptRunner, claim: Claim, job: ProcessedJobDoc, result: StepsResult): Promise<AttemptOutcome> {
  const { ctx, writer } = runner;
  const { clock, log } = ctx;
  if (result.kind === 'lost') return lost(ctx, job, claim);
  const now = new Date(clock.now());
  if (result.kind === 'succeeded') {
    const kept = writer ? await writer.write(claim, successUpdate(now)) : await recordSuccess(ctx.db, claim, now);
    if (!kept) return lost(ctx, job, claim);
    log.debug('job succeeded', { key: job.key, attempt: claim.attempt });
    return 'succeeded';
  }
  const { error, immediate } = result;
  let outcome: Exclude<AttemptOutcome, 'succeeded'>;
  if (writer) {
    const planned = failureUpdate(claim, error, runner.policy, now, immediate);
    outcome = (await writer.write(claim, planned.update)) ? planned.outcome : 'lost';
  } else {
    outcome = await recordFailure(ctx.db, claim, error, runner.policy, now, immediate);
  }
  if (outcome === 'lost') return lost(ctx, job, claim);
  const fields = { key: job.key, attempt: claim.attempt, code: error.code, retryable: error.retryable };
  if (outcome === 'dead') log.warn('job dead', { ...fields, reason: error.message });
  else log.info('job attempt failed; retry scheduled', fields);
  return outcome;
}

function lost(ctx: AppContext, job: ProcessedJobDoc, claim: Claim): 'lost' {
  ctx.log.warn('job claim lost: another processor owns the job; result not recorded', { key: job.key, attempt: claim.attempt });
  return 'lost';
}
