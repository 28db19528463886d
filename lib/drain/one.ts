import type { AppContext } from '../platform/context.js';
import type { DrainSummary, StartedBy } from '../data/documents.js';
import { resolveStream } from '../streams/refs.js';
import { drainStream } from './drain.js';
import { type ContinuationResult, publishContinuation } from '../fanout/continuation.js';
import { relayMode, relayWindow, startChain, type SuccessorOutcome } from '../fanout/relay.js';
import { BadRequestError } from '../platform/errors.js';
import { isRecoveryId, partitionOfRecovery, runRecovery, type RecoveryRunResult } from './recovery-run.js';

/** What `POST /api/drain` answers: the run, and how the stream goes on after it. */
export interface DrainOneResult {
  run: DrainSummary;
  continuation: ContinuationResult | null;
  /** Relay windows and chain starts (lib/fanout/relay.ts); absent for plain drains in the tick relay. */
  relay?: {
    generation: number | null;
    /** The message's generation was at or below the stored one: this chain stops (QStash gets a 2xx). */
    superseded: boolean;
    message?: string;
    waitedMs?: number;
    gapMs?: number | null;
    successor: SuccessorOutcome | null;
  };
  /** A partition's recovery run (`streamId: 'recovery:partition:{p}/{P}'`, lib/drain/recovery-run.ts). */
  recovery?: Omit<RecoveryRunResult, 'run'>;
}

/**
 * What `POST /api/drain` does: resolve the stream, drain it once, continue it when it was busy. With
 * a `generation` the run is a relay window (relayWindow). In the continuous relay a plain drain that
 * ended busy starts a relay chain instead of publishing a continuation. A recovery id
 * (`recovery:partition:{p}/{P}`) runs that partition's recovery (runRecovery), which asks for its
 * own next run when work is left.
 */
export async function drainOne(
  ctx: AppContext,
  target: { orgId: string } | { streamId: string },
  startedBy: StartedBy,
  generation?: number,
): Promise<DrainOneResult> {
  if ('streamId' in target && isRecoveryId(target.streamId)) {
    if (generation !== undefined) throw new BadRequestError('a relay generation goes with a stream, not with a recovery (recovery:partition:<p>/<P>)');
    const { run, ...recovery } = await runRecovery(ctx, partitionOfRecovery(target.streamId), { startedBy });
    return { run, continuation: null, recovery };
  }
  const stream = await resolveStream(ctx, target);
  if (generation !== undefined) {
    const w = await relayWindow(ctx, stream, generation, { startedBy: startedBy === 'cron' ? 'cron' : 'relay' });
    const relay: DrainOneResult['relay'] = { generation, superseded: w.superseded, waitedMs: w.waitedMs, gapMs: w.gapMs, successor: w.successor };
    if (w.superseded) relay.message = `generation ${generation} of ${stream.id} is at or below the stored generation: superseded by a newer window, this chain stops`;
    return { run: w.run, continuation: null, relay };
  }
  const run = await drainStream(ctx, stream, { startedBy });
  if (!run.busy) return { run, continuation: null };
  if (relayMode(ctx.config) === 'continuous' && ctx.publisher) {
    return { run, continuation: null, relay: { generation: null, superseded: false, successor: await startChain(ctx, stream) } };
  }
  return { run, continuation: await publishContinuation(ctx, stream.id, run.runId) };
}
