import type { AppContext } from '../platform/context.js';
import { processJobs } from '../jobs/process.js';
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

/**
 * What `/api/jobs/process` does: run due jobs until the deadline; when due jobs remain and this run
 * made progress, publish one continuation (deduplicated by this run's owner id) so the backlog does
 * not wait for the next minute. A run that claimed nothing does not continue: a chain that cannot
 * progress would otherwise loop through QStash until the next cron tick anyway.
 */
export async function processJobsAndContinue(ctx: AppContext) {
  const summary = await processJobs(ctx);
  let continuation: ContinuationResult | null = null;
  if (summary.moreDue && summary.claimed === 0) continuation = { published: false, reason: 'no_progress' };
  else if (summary.moreDue && !ctx.publisher) continuation = { published: false, reason: 'qstash_not_configured' };
  else if (summary.moreDue) {
    continuation = await publishOne(ctx, {
      url: publicUrl(ctx.config, '/api/jobs/process'),
      body: { continuationOf: summary.owner },
      deduplicationId: jobsContinuationDedupId(summary.owner),
      flowControlKey: JOBS_FLOW_KEY,
    });
  }
  return { summary, continuation };
}
