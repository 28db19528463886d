import type { AppContext } from '../platform/context.js';
import { jobsLaneDedupId, jobsLaneFlowKey, publicUrl } from '../qstash/messages.js';
import { dueFilter, jobsCollection } from './claim.js';
import { processJobs, type BacklogProbe } from './process.js';
import type { ProcessSummary } from './types.js';

/**
 * How many parallel runs to add to a run that measured `jobsPerSec` with `remainingMs` left while
 * `due` jobs wait: enough that the runs together can clear the backlog in the time left, never more
 * than `parallelism − 1` (the run itself is one of the JOB_PARALLELISM). A run that finished
 * nothing yet is assumed too slow for the backlog: all lanes.
 */
export function lanesFor(due: number, jobsPerSec: number, remainingMs: number, parallelism: number): number {
  const max = Math.max(0, Math.floor(parallelism) - 1);
  if (due <= 0 || max === 0) return 0;
  const perRun = (jobsPerSec * remainingMs) / 1000;
  if (!(perRun > 0)) return max;
  return Math.max(0, Math.min(max, Math.ceil(due / perRun) - 1));
}

/** What one scale-out decision did. */
export interface ScaleOutResult {
  /** Due jobs counted (capped at what JOB_PARALLELISM runs could clear, + 1), plus those the lead holds. */
  due: number;
  lanes: number;
  mode: 'qstash' | 'in_process';
  /** QStash: one entry per lane message. */
  published: { lane: number; messageId: string | null; deduplicated: boolean; error?: string }[];
  /** In process: the lane runs, settled once they end (by the lead run's deadline). */
  runs: Promise<ProcessSummary>[];
}

/**
 * Scale out a processor run that reports a backlog (`processJobs` `onBacklog`): count due jobs,
 * and when more are due than this run can clear in its time left, add up to JOB_PARALLELISM − 1
 * parallel runs ("lanes"). Lanes claim through the same batched, fenced claim, so they take
 * disjoint jobs and keep the ordering rule (lib/jobs/ordering.ts).
 *
 * - With QStash: one message per lane to `/api/jobs/process` with body `{ lane, wave }`. The
 *   deduplication id is per wave (the lead run's owner) and lane, so a redelivered lead does not
 *   add lanes twice; each lane has its own flow-control key (`jobs-process-lane-<n>`, parallelism
 *   1), so however many waves overlap, at most one run per lane is live: JOB_PARALLELISM in all.
 *   A lane neither scales out again nor publishes a continuation; the lead does.
 * - Without QStash: the lanes run here, inside the lead's window (ending by its deadline).
 */
export async function scaleOut(ctx: AppContext, probe: BacklogProbe): Promise<ScaleOutResult> {
  const parallelism = ctx.config.JOB_PARALLELISM;
  const perRun = (probe.jobsPerSec * probe.remainingMs) / 1000;
  const cap = Number.isFinite(perRun) && perRun > 0 ? Math.ceil(perRun * parallelism) + 1 : 1_000_000;
  const waiting = await jobsCollection(ctx.db).countDocuments(dueFilter(new Date(ctx.clock.now()), ctx.config.JOB_MAX_ATTEMPTS), { limit: cap });
  // The lead's own claimed-but-not-started jobs are part of the backlog it must clear.
  const due = waiting + probe.held;
  const lanes = lanesFor(due, probe.jobsPerSec, probe.remainingMs, parallelism);
  const result: ScaleOutResult = { due, lanes, mode: ctx.publisher ? 'qstash' : 'in_process', published: [], runs: [] };
  if (lanes === 0) return result;
  const numbers = Array.from({ length: lanes }, (_, i) => i + 1);
  if (ctx.publisher) {
    const url = publicUrl(ctx.config, '/api/jobs/process');
    const answers = await ctx.publisher.publishBatch(
      numbers.map((lane) => ({
        url,
        body: { lane, wave: probe.owner },
        deduplicationId: jobsLaneDedupId(probe.owner, lane),
        flowControlKey: jobsLaneFlowKey(lane),
      })),
    );
    result.published = numbers.map((lane, i) => ({ lane, ...(answers[i] ?? { messageId: null, deduplicated: false, error: 'no answer' }) }));
  } else {
    const windowMs = Math.max(0, probe.deadlineAt - ctx.clock.now());
    result.runs = numbers.map((lane) => processJobs(ctx, { owner: `${probe.owner}:lane${lane}`, windowMs, lane: true }));
  }
  ctx.log.info('job processor scaled out', { wave: probe.owner, due, lanes, mode: result.mode, jobsPerSec: Math.round(probe.jobsPerSec) });
  return result;
}
