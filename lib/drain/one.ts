import type { AppContext } from '../platform/context.js';
import type { DrainSummary, StartedBy } from '../data/documents.js';
import { resolveStream } from '../streams/refs.js';
import { drainStream } from './drain.js';
import { type ContinuationResult, publishContinuation } from '../fanout/continuation.js';

/** What `POST /api/drain` does: resolve the stream, drain it once, continue it when it was busy. */
export async function drainOne(
  ctx: AppContext,
  target: { orgId: string } | { streamId: string },
  startedBy: StartedBy,
): Promise<{ run: DrainSummary; continuation: ContinuationResult | null }> {
  const stream = await resolveStream(ctx, target);
  const run = await drainStream(ctx, stream, { startedBy });
  const continuation = run.busy ? await publishContinuation(ctx, stream.id, run.runId) : null;
  return { run, continuation };
}
