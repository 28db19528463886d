import type { AppContext } from '../platform/context.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { CheckpointDoc } from '../data/documents.js';
import type { StreamRef } from '../streams/refs.js';
import { isContinuousStream, type SuccessorOutcome } from './relay.js';
import { isPaused } from '../streams/pause.js';
import { RELAY_PARALLELISM, publicUrl, relayFlowKey, relayRestartDedupId } from '../qstash/messages.js';

/**
 * The minute cron in the continuous relay: a watchdog over relay chains (lib/fanout/relay.ts).
 * A chain is due for a restart when its stream is relayed (a partition, or a stream whose chain is
 * marked live), nothing holds its lease (none, or expired), and no successor was published within
 * RELAY_WATCHDOG_AFTER_MS (one on its way would take the lease shortly). The restart carries the
 * stored generation + 1, so if the old chain was alive after all, the first of the two to take the
 * lease stores its generation and the other is refused as superseded.
 */

type WatchedCheckpoint = Pick<CheckpointDoc, '_id' | 'lease' | 'state' | 'paused' | 'relay'>;

export interface WatchdogPlan {
  /** Relayed streams whose chain looks alive (lease held, or successor recently published). */
  live: StreamRef[];
  /** Chains to restart, with the generation to restart at. */
  restart: { stream: StreamRef; generation: number }[];
  /** Relayed streams that are paused (not restarted). */
  paused: StreamRef[];
  /** Streams the relay does not carry now: left to the tick fan-out. */
  ticked: StreamRef[];
}

/** Split streams between the relay watchdog and the tick fan-out, and pick the chains to restart. Pure. */
export function planWatchdog(streams: StreamRef[], checkpoints: WatchedCheckpoint[], nowMs: number, restartAfterMs: number): WatchdogPlan {
  const byId = new Map(checkpoints.map((c) => [c._id, c]));
  const plan: WatchdogPlan = { live: [], restart: [], paused: [], ticked: [] };
  for (const stream of streams) {
    const cp = byId.get(stream.id);
    if (!isContinuousStream(stream) && !cp?.relay?.live) {
      plan.ticked.push(stream);
      continue;
    }
    if (isPaused(cp)) plan.paused.push(stream);
    else if (cp?.lease && cp.lease.expiresAt.getTime() > nowMs) plan.live.push(stream);
    else if (cp?.relay?.lastPublishedAt && nowMs - cp.relay.lastPublishedAt.getTime() < restartAfterMs) plan.live.push(stream);
    else plan.restart.push({ stream, generation: (cp?.relay?.generation ?? 0) + 1 });
  }
  return plan;
}

export interface RestartOutcome extends SuccessorOutcome {
  streamId: string;
}

/**
 * Publish the planned restarts (deduplicated per stream, generation and tick, so duplicate cron
 * deliveries restart once) and count each accepted one on the checkpoint (`relay.restarts`).
 */
export async function restartChains(ctx: AppContext, plan: WatchdogPlan, tick: string): Promise<RestartOutcome[]> {
  if (!ctx.publisher || plan.restart.length === 0) return [];
  const url = publicUrl(ctx.config, '/api/drain');
  let results: Awaited<ReturnType<NonNullable<AppContext['publisher']>['publishBatch']>>;
  try {
    results = await ctx.publisher.publishBatch(
      plan.restart.map(({ stream, generation }) => ({
        url,
        body: { streamId: stream.id, generation },
        deduplicationId: relayRestartDedupId(stream.id, generation, tick),
        flowControlKey: relayFlowKey(stream.id),
        parallelism: RELAY_PARALLELISM,
      })),
    );
  } catch (error) {
    const message = String((error as Error)?.message ?? error);
    return plan.restart.map(({ stream, generation }) => ({ streamId: stream.id, generation, published: false, error: message }));
  }
  const now = new Date(ctx.clock.now());
  const checkpoints = ctx.db.collection<CheckpointDoc>(COLLECTIONS.checkpoints);
  return Promise.all(
    plan.restart.map(async ({ stream, generation }, i) => {
      const r = results[i];
      if (!r || r.error) return { streamId: stream.id, generation, published: false, error: r?.error ?? 'no answer' };
      if (!r.deduplicated) {
        await checkpoints.updateOne(
          { _id: stream.id },
          { $set: { 'relay.live': true, 'relay.lastPublishedAt': now, 'relay.lastRestartAt': now }, $inc: { 'relay.restarts': 1 } },
        );
      }
      return { streamId: stream.id, generation, published: true, messageId: r.messageId, deduplicated: r.deduplicated };
    }),
  );
}
