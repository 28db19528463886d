import { randomUUID } from 'node:crypto';
import { webhookFetch } from './guarded-fetch.js';
import { Deadline } from '../platform/clock.js';
import type { AppContext } from '../platform/context.js';
import { maxWindowMs } from '../platform/limits.js';
import type { RandomSource } from './backoff.js';
import { deadAbandoned, dueFilter, jobsCollection } from './claim.js';
import { claimDueJobs, type ClaimedJob } from './claim-batch.js';
import { ResultBatcher } from './result-batch.js';
import { cancelGuards, recordResult, retryPolicyFrom, runSteps, type AttemptRunner } from './run.js';
import { createStepRegistry, type StepRegistry } from './steps.js';
import type { AttemptOutcome, ProcessSummary } from './types.js';

export interface ProcessOptions {
  /** Length of the run; default JOB_WINDOW_MS, never more than the function's limit allows. */
  windowMs?: number;
  /** Lease owner; default `jobs:<random uuid>`, unique per invocation. */
  owner?: string;
  /** Jobs run at once; default JOB_CONCURRENCY. */
  concurrency?: number;
  /** Step handlers; default `createStepRegistry()` (the built-in webhook). */
  steps?: StepRegistry;
  /** HTTP client for steps; default `webhookFetch(config)`, which refuses non-public destinations (lib/jobs/guarded-fetch.ts). */
  fetch?: typeof fetch;
  /** Random source for backoff jitter; default Math.random. */
  random?: RandomSource;
  /**
   * No new job is claimed when less than this remains before the deadline, since such an attempt
   * would be cut short and spend an attempt for nothing. Default min(WEBHOOK_TIMEOUT_MS, 2000).
   */
  minAttemptMs?: number;
  /**
   * Smallest number of jobs claimed per batch (2 or 3 round trips per batch,
   * lib/jobs/claim-batch.ts); default 2 × concurrency. The next batch is claimed while the previous
   * one is still being worked through. A batch is sized to cover what the workers start during two
   * claim round trips (measured in real time: the rate jobs start at, the last claim's duration),
   * up to `maxClaimBatch`: batches grow only when claims, not the jobs, hold the workers up, and a
   * run never hoards jobs that parallel runs could take. Claimed jobs not started by the deadline
   * are released.
   */
  claimBatch?: number;
  /** Default max(claimBatch, 32 × concurrency), at most 1,000. */
  maxClaimBatch?: number;
  /**
   * Called once, about `SCALE_PROBE_MS` into the run while due jobs remain, with this run's
   * observed rate: the caller may start parallel runs (lib/jobs/scale.ts). Errors are logged, not thrown.
   */
  onBacklog?: (probe: BacklogProbe) => Promise<void> | void;
  /**
   * A parallel run a lead added (lib/jobs/scale.ts): it skips the dead-letter sweep at its start
   * and the due count at its end (`moreDue` is then false), which its lead does once per
   * invocation; with short runs over a deep queue these two commands per lane were a large share
   * of the round trips.
   */
  lane?: boolean;
}

/** Whether any job is due at the context clock's now (one `countDocuments` with limit 1). */
export async function anyDue(ctx: AppContext): Promise<boolean> {
  const dueNow = dueFilter(new Date(ctx.clock.now()), ctx.config.JOB_MAX_ATTEMPTS);
  return (await jobsCollection(ctx.db).countDocuments(dueNow, { limit: 1 })) > 0;
}

/** What a run reports to `onBacklog`. */
export interface BacklogProbe {
  owner: string;
  /** Attempts this run finished per second so far. */
  jobsPerSec: number;
  /** Time left before this run's deadline, ms. */
  remainingMs: number;
  /** Epoch ms of this run's deadline (parallel runs should end by it too). */
  deadlineAt: number;
  /** Jobs this run has claimed and not started yet (no longer counted as due). */
  held: number;
}

/** How far into a run (ms on the context clock) its rate is measured for `onBacklog`. */
export const SCALE_PROBE_MS = 500;

function runnerFor(ctx: AppContext, opts: ProcessOptions, deadline: Deadline): AttemptRunner {
  return {
    ctx,
    registry: opts.steps ?? createStepRegistry(),
    fetch: opts.fetch ?? webhookFetch(ctx.config),
    policy: retryPolicyFrom(ctx, opts.random),
    deadlineAt: deadline.at,
  };
}

function windowOf(ctx: AppContext, opts: ProcessOptions): number {
  return Math.max(0, Math.min(opts.windowMs ?? ctx.config.JOB_WINDOW_MS, maxWindowMs('jobs')));
}

function warnIfUnsigned(ctx: AppContext): void {
  if (!ctx.config.WEBHOOK_SIGNING_SECRET) {
    ctx.log.warn('WEBHOOK_SIGNING_SECRET is not set: webhooks are sent without a signature header');
  }
}

/**
 * Claim and run due jobs until the deadline or until none is due. The deadline is computed once;
 * every attempt is bounded by it, and no job is started when too little time remains.
 * Jobs are claimed in batches (`claimDueJobs`) and results written in batches (`ResultBatcher`):
 * a worker hands its result to the batch and takes the next job; the run ends once every result
 * is recorded. `moreDue` tells the caller to publish a continuation.
 */
export async function processJobs(ctx: AppContext, opts: ProcessOptions = {}): Promise<ProcessSummary> {
  const { clock, config } = ctx;
  const started = clock.now();
  const deadline = Deadline.after(clock, windowOf(ctx, opts));
  const owner = opts.owner ?? `jobs:${randomUUID()}`;
  const concurrency = Math.max(1, Math.min(256, Math.floor(opts.concurrency ?? config.JOB_CONCURRENCY)));
  const minClaimBatch = Math.max(1, Math.min(1_000, Math.floor(opts.claimBatch ?? 2 * concurrency)));
  let claimBatch = minClaimBatch;
  const maxClaimBatch = Math.max(minClaimBatch, Math.min(1_000, Math.floor(opts.maxClaimBatch ?? 32 * concurrency)));
  const minAttemptMs = opts.minAttemptMs ?? Math.min(config.WEBHOOK_TIMEOUT_MS, 2_000);
  const writer = new ResultBatcher(ctx.db);
  const runner: AttemptRunner = { ...runnerFor(ctx, opts, deadline), writer, guards: new Map() };
  warnIfUnsigned(ctx);

  const summary: ProcessSummary = {
    owner,
    claimed: 0,
    succeeded: 0,
    retried: 0,
    dead: 0,
    lost: 0,
    reclaimed: 0,
    abandonedDead: opts.lane ? 0 : await deadAbandoned(ctx.db, new Date(clock.now()), config.JOB_MAX_ATTEMPTS),
    stoppedBy: 'deadline',
    moreDue: false,
    durationMs: 0,
    roundTrips: opts.lane ? 0 : 1,
    released: 0,
  };
  const ready: ClaimedJob[] = [];
  /** Jobs held back by the ordering rule in this run: not read again as candidates. */
  const blocked = new Set<string>();
  let refilling: Promise<void> | null = null;
  let drained = false;
  let failure: { error: unknown } | null = null;
  let finished = 0;
  let probed = !opts.onBacklog;
  /** The `onBacklog` call, awaited before the run returns so that what it started is known to the caller. */
  let backlogTask: Promise<void> = Promise.resolve();
  const recording: Promise<void>[] = [];
  const canStart = () => deadline.remaining() >= minAttemptMs;
  const fail = (error: unknown) => {
    failure ??= { error }; // the others stop claiming; claimed jobs come back when their leases expire
  };

  // Real time, not the context clock: this paces I/O, it decides nothing about jobs.
  const startedReal = performance.now();
  let starts = 0;
  const refill = (): Promise<void> =>
    (refilling ??= (async () => {
      const t0 = performance.now();
      try {
        const got = await claimDueJobs(ctx.db, {
          owner,
          now: new Date(clock.now()),
          leaseMs: config.JOB_LEASE_MS,
          maxAttempts: config.JOB_MAX_ATTEMPTS,
          limit: claimBatch,
          exclude: blocked,
        });
        summary.roundTrips += got.roundTrips;
        for (const id of got.blockedIds) blocked.add(id);
        const startsPerMs = starts / Math.max(1, performance.now() - startedReal);
        const claimMs = performance.now() - t0;
        claimBatch = Math.max(minClaimBatch, Math.min(maxClaimBatch, Math.ceil(startsPerMs * claimMs * 2)));
        ready.push(...got.claimed);
        // Only a read that found nothing due (held-back jobs excluded) ends the claiming: jobs lost
        // to racing processors or held back by ordering mean others may still be claimable.
        if (got.candidates === 0) drained = true;
      } catch (error) {
        fail(error);
      } finally {
        refilling = null;
      }
    })());

  const probe = () => {
    if (probed || drained || clock.now() - started < SCALE_PROBE_MS) return;
    probed = true;
    const elapsed = Math.max(1, clock.now() - started);
    backlogTask = Promise.resolve()
      .then(() => opts.onBacklog!({ owner, jobsPerSec: (finished * 1000) / elapsed, remainingMs: deadline.remaining(), deadlineAt: deadline.at, held: ready.length }))
      .catch((error: unknown) => ctx.log.warn('scaling out the job processor failed', { error }));
  };

  const take = async (): Promise<ClaimedJob | null> => {
    for (;;) {
      if (failure) return null;
      const next = ready.shift();
      if (next) {
        // Claim the next batch while this one is still being worked through.
        if (ready.length < Math.max(concurrency, claimBatch / 2) && !drained && canStart()) void refill();
        return next;
      }
      if (drained || !canStart()) return null;
      await refill();
    }
  };

  const worker = async (): Promise<void> => {
    for (let got = await take(); got; got = await take()) {
      if (!canStart()) {
        ready.unshift(got); // released below with the rest
        return;
      }
      summary.claimed++;
      starts++;
      if (got.claim.reclaimed) summary.reclaimed++;
      const job = got;
      const steps = await runSteps(runner, job.claim, job.job);
      recording.push(
        recordResult(runner, job.claim, job.job, steps).then((outcome: AttemptOutcome) => {
          summary[outcome]++;
          finished++;
          // A finished attempt may be the one a held-back job waited for.
          blocked.clear();
        }, fail),
      );
      probe();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker().catch(fail)));
  cancelGuards(runner);
  await refilling;
  await backlogTask;
  await Promise.all(recording);
  // Claimed but never started (deadline, or a failure elsewhere): back to the queue as they were.
  if (ready.length > 0) {
    const now = new Date(clock.now());
    const released = await Promise.allSettled(ready.splice(0).map((r) => writer.write(r.claim, releaseUpdate(now))));
    summary.released = released.filter((r) => r.status === 'fulfilled' && r.value).length;
  }
  await writer.flush();
  summary.roundTrips += writer.roundTrips;
  if (failure) throw (failure as { error: unknown }).error;

  // Out of time wins over "nothing was due": idle workers may have found the queue empty while
  // another worker's attempt was still running into the deadline.
  summary.stoppedBy = drained && canStart() ? 'drained' : 'deadline';
  if (!opts.lane) {
    summary.moreDue = await anyDue(ctx);
    summary.roundTrips++;
  }
  summary.durationMs = clock.now() - started;
  ctx.log.info('jobs processed', { ...summary });
  return summary;
}

/**
 * Gives a claimed job back untouched: `queued` again with the attempt the claim counted undone, so
 * a job claimed in a batch but never started costs no attempt. Applied fenced on the claim.
 */
export function releaseUpdate(now: Date) {
  return { $set: { status: 'queued' as const, lease: null, updatedAt: now }, $inc: { attempts: -1 } };
}
