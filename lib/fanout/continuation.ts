import type { AppContext } from '../platform/context.js';
import { anyDue, processJobs } from '../jobs/process.js';
import { scaleOut, type ScaleOutResult } from '../jobs/scale.js';
import type { PublishMessage } from '../qstash/publisher.js';
import { JOBS_FLOW_KEY, drainContinuationDedupId, flowKeyFor, jobsContinuationDedupId, publicUrl } from '../qstash/messages.js';

/** Continuations: a busy drain or job run publishes its own next run instead of waiting for the next cron tick. */

export interface ContinuationResult {
  published: boolean;
  messageId?: string | null;
  deduplicated?: boolean;
  /** Why nothing was published (no QStash: the next cron tick continues). */
  reason?: string;
}

/** Publish one message; a missing publisher or a refused message is reported, not thrown. */
async function publishOne(ctx: AppContext, message: PublishMessage): Promise<ContinuationResult> {
  if (!ctx.publisher) return { published: false, reason: 'qstash_not_configured' };
  const [result] = await ctx.publisher.publishBatch([message]);
  if (!result || result.error) return { published: false, reason: result?.error ?? 'no answer' };
  return { published: true, messageId: result.messageId, deduplicated: result.deduplicated };
}

/** Publish the next drain of a busy stream; its dedup id is tied to the run, so a redelivered run continues once. */
export function publishContinuation(ctx: AppContext, streamId: string, runId: string): Promise<ContinuationResult> {
  if (!ctx.publisher) return Promise.resolve({ published: false, reason: 'qstash_not_configured' });
  return publishOne(ctx, {
    url: publicUrl(ctx.config, '/api/drain'),
    body: { streamId, continuationOf: runId },
    deduplicationId: drainContinuationDedupId(streamId, runId),
    flowControlKey: flowKeyFor(streamId),
  });
}

/** Which run of the processor this is: the lead (cron, continuation, kick) or a lane a lead added. */
export interface ProcessRunOptions {
  /** Set for a lane (1 … JOB_PARALLELISM − 1): it neither scales out nor continues. */
  lane?: number;
}

/**
 * What `/api/jobs/process` does: run due jobs until the deadline. A lead run that measures a
 * backlog deeper than it can clear adds parallel runs (`scaleOut`, JOB_PARALLELISM); when due jobs
 * remain at its end and it made progress, it publishes one continuation (deduplicated by this
 * run's owner id) so the backlog does not wait for the next minute. A run that claimed nothing does
 * not continue: a chain that cannot progress would otherwise loop through QStash until the next
 * cron tick anyway. In-process lanes are awaited and their summaries returned.
 */
export async function processJobsAndContinue(ctx: AppContext, run: ProcessRunOptions = {}) {
  const isLane = run.lane !== undefined;
  let scaled: ScaleOutResult | null = null;
  const summary = await processJobs(
    ctx,
    isLane
      ? { lane: true }
      : ctx.config.JOB_PARALLELISM <= 1
      ? {}
      : {
          onBacklog: async (probe) => {
            scaled = await scaleOut(ctx, probe);
          },
        },
  );
  const scale = scaled as ScaleOutResult | null;
  const settled = scale ? await Promise.allSettled(scale.runs) : [];
  const lanes = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const laneErrors = settled.flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error)?.message ?? r.reason)] : []));
  // A failed lane's claimed jobs come back when their leases expire; the lead's result stands.
  for (const error of laneErrors) ctx.log.warn('a parallel processor run failed', { error });
  const claimed = summary.claimed + lanes.reduce((n, l) => n + l.claimed, 0);
  // Lanes do not count due jobs; they may have released claimed jobs after the lead counted, so
  // the lead counts once more when it found none and lanes ran.
  const moreDue = summary.moreDue || (lanes.length > 0 && (await anyDue(ctx)));
  let continuation: ContinuationResult | null = null;
  if (isLane || !moreDue) continuation = null;
  else if (claimed === 0) continuation = { published: false, reason: 'no_progress' };
  else if (!ctx.publisher) continuation = { published: false, reason: 'qstash_not_configured' };
  else {
    continuation = await publishOne(ctx, {
      url: publicUrl(ctx.config, '/api/jobs/process'),
      body: { continuationOf: summary.owner },
      deduplicationId: jobsContinuationDedupId(summary.owner),
      flowControlKey: JOBS_FLOW_KEY,
    });
  }
  return {
    summary,
    continuation,
    ...(scale ? { scaleOut: { due: scale.due, lanes: scale.lanes, mode: scale.mode, published: scale.published, runs: lanes, laneErrors } } : {}),
  };
}
