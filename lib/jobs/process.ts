import { randomUUID } from 'node:crypto';
import { webhookFetch } from './guarded-fetch.js';
import { Deadline } from '../platform/clock.js';
import type { AppContext } from '../platform/context.js';
import { maxWindowMs } from '../platform/limits.js';
import type { JobStatus } from '../data/documents.js';
import type { RandomSource } from './backoff.js';
import { claimJob, deadAbandoned, dueFilter, jobsCollection } from './claim.js';
import { jobRef, retryPolicyFrom, runClaimed, type AttemptRunner } from './run.js';
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
}

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
 * every attempt is bounded by it, and no job is claimed when too little time remains.
 * `moreDue` tells the caller to publish a continuation.
 */
export async function processJobs(ctx: AppContext, opts: ProcessOptions = {}): Promise<ProcessSummary> {
  const { clock, config } = ctx;
  const started = clock.now();
  const deadline = Deadline.after(clock, windowOf(ctx, opts));
  const owner = opts.owner ?? `jobs:${randomUUID()}`;
  const concurrency = Math.max(1, Math.min(256, Math.floor(opts.concurrency ?? config.JOB_CONCURRENCY)));
  const minAttemptMs = opts.minAttemptMs ?? Math.min(config.WEBHOOK_TIMEOUT_MS, 2_000);
  const runner = runnerFor(ctx, opts, deadline);
  warnIfUnsigned(ctx);

  const summary: ProcessSummary = {
    owner,
    claimed: 0,
    succeeded: 0,
    retried: 0,
    dead: 0,
    lost: 0,
    reclaimed: 0,
    abandonedDead: await deadAbandoned(ctx.db, new Date(clock.now()), config.JOB_MAX_ATTEMPTS),
    stoppedBy: 'deadline',
    moreDue: false,
    durationMs: 0,
  };
  let drained = false;
  let failed = false;

  const worker = async (): Promise<void> => {
    while (!drained && !failed && deadline.remaining() >= minAttemptMs) {
      const got = await claimJob(ctx.db, {
        owner,
        now: new Date(clock.now()),
        leaseMs: config.JOB_LEASE_MS,
        maxAttempts: config.JOB_MAX_ATTEMPTS,
      });
      if (!got) {
        drained = true;
        return;
      }
      summary.claimed++;
      if (got.claim.reclaimed) summary.reclaimed++;
      const outcome: AttemptOutcome = await runClaimed(runner, got.claim, got.job);
      summary[outcome]++;
    }
  };
  const settled = await Promise.allSettled(
    Array.from({ length: concurrency }, () =>
      worker().catch((error: unknown) => {
        failed = true; // the others stop claiming; claimed jobs come back when their leases expire
        throw error;
      }),
    ),
  );
  const rejected = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;

  // Out of time wins over "nothing was due": idle workers may have found the queue empty while
  // another worker's attempt was still running into the deadline.
  summary.stoppedBy = drained && deadline.remaining() >= minAttemptMs ? 'drained' : 'deadline';
  const dueNow = dueFilter(new Date(clock.now()), config.JOB_MAX_ATTEMPTS);
  summary.moreDue = (await jobsCollection(ctx.db).countDocuments(dueNow, { limit: 1 })) > 0;
  summary.durationMs = clock.now() - started;
  ctx.log.info('jobs processed', { ...summary });
  return summary;
}

/** Result of running one named job. `not_claimable`: it exists but is not due (or is leased). */
export type RunJobResult =
  | { outcome: AttemptOutcome; key: string; attempt: number }
  | { outcome: 'not_claimable'; key: string; status: JobStatus; runAt: Date }
  | { outcome: 'not_found' };

/**
 * Claim and run one specific job (by key or `_id`) if it is due; for a per-job delivery route.
 * Same fencing, deadline and retry policy as `processJobs`.
 */
export async function runJob(ctx: AppContext, jobKey: string, opts: ProcessOptions = {}): Promise<RunJobResult> {
  const { clock, config } = ctx;
  const deadline = Deadline.after(clock, windowOf(ctx, opts));
  warnIfUnsigned(ctx);
  const got = await claimJob(ctx.db, {
    owner: opts.owner ?? `jobs:${randomUUID()}`,
    now: new Date(clock.now()),
    leaseMs: config.JOB_LEASE_MS,
    maxAttempts: config.JOB_MAX_ATTEMPTS,
    only: jobRef(jobKey),
  });
  if (!got) {
    const existing = await jobsCollection(ctx.db).findOne(jobRef(jobKey), { projection: { key: 1, status: 1, runAt: 1 } });
    return existing ? { outcome: 'not_claimable', key: existing.key, status: existing.status, runAt: existing.runAt } : { outcome: 'not_found' };
  }
  const outcome = await runClaimed(runnerFor(ctx, opts, deadline), got.claim, got.job);
  return { outcome, key: got.job.key, attempt: got.claim.attempt };
}
