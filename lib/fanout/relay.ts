import type { Collection } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import type { Config } from '../platform/config.js';
import { maxWindowMs } from '../platform/limits.js';
import { squashError } from '../platform/errors.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { CheckpointDoc, DrainSummary, StartedBy } from '../data/documents.js';
import type { StreamRef } from '../streams/refs.js';
import { drainStream } from '../drain/drain.js';
import type { PublishResult } from '../qstash/publisher.js';
import { RELAY_PARALLELISM, publicUrl, relayDedupId, relayFlowKey } from '../qstash/messages.js';

/**
 * The continuous relay (README "Continuous relay"). A stream is drained by a chain of windows, one
 * invocation each, numbered by a generation g carried in the message (`{streamId, generation}`):
 *
 * - RELAY_HANDOVER_LEAD_MS before its deadline, window g publishes window g+1 (QStash deduplication
 *   id `relay-{streamId}-{g+1}`, so however often g runs, g+1 is accepted once);
 * - window g+1 arrives while g still holds the lease and polls the lease (tight interval, bounded by
 *   the lead plus a margin); g releases right after its last flush and token save, and g+1 takes the
 *   lease at once. The gap (g's release → g+1's first read) is stored on the checkpoint;
 * - taking the lease with g+1 stores g+1 in the same findOneAndUpdate as the lease fence
 *   (CheckpointStore.acquire), so a message whose generation is at or below the stored one is refused
 *   as `superseded`: a duplicate delivery, or one of two forked chains, stops itself.
 *
 * Partition streams relay without pause (`continuous`: idle periods do not end a window); other
 * streams (a busy `source:{orgId}`) relay while their windows end busy and go back to cron ticks
 * when a window ends idle. The minute cron is the chain's watchdog (lib/fanout/watchdog.ts).
 */

export type RelayMode = 'continuous' | 'tick';

/** RELAY, or its default: `continuous` in the `database` layout, `tick` in the `collection` layout. */
export function relayMode(config: Config): RelayMode {
  return config.RELAY ?? (config.STREAM_LAYOUT === 'database' ? 'continuous' : 'tick');
}

/** Streams a relay drains without pause: partitions. Other kinds relay only while busy. */
export function isContinuousStream(stream: Pick<StreamRef, 'kind'>): boolean {
  return stream.kind === 'partition';
}

/** Poll interval of a successor waiting for its predecessor's lease. */
export const HANDOVER_POLL_MS = 10;

/**
 * Lead of one window: RELAY_HANDOVER_LEAD_MS, or half the window when the window is shorter than
 * twice the lead (a successor must never be published before the window has done anything).
 */
export function handoverLeadMs(config: Config, windowMs: number): number {
  return Math.max(1, Math.min(config.RELAY_HANDOVER_LEAD_MS, Math.floor(windowMs / 2)));
}

/**
 * How long a successor waits for its predecessor's lease: the lead, plus the predecessor's last
 * read (DRAIN_MAX_AWAIT_MS), final flush and release (a fixed 2 s). Past it, the message gives up
 * (`leased`) and the watchdog restarts the chain if the predecessor never released.
 */
export function handoverWaitMs(config: Config): number {
  return config.RELAY_HANDOVER_LEAD_MS + config.DRAIN_MAX_AWAIT_MS + 2_000;
}

/** A relay message as QStash delivers it to `/api/drain`. */
export interface RelayMessage {
  streamId: string;
  generation: number;
}

/** How a successor was handed on: published to QStash, or (in-process) left to the runner's next turn. */
export interface SuccessorOutcome {
  generation: number;
  published: boolean;
  messageId?: string | null;
  deduplicated?: boolean;
  error?: string;
}

/** Hands the next generation on; the default publishes it to QStash. Never throws (errors are outcomes). */
export type SuccessorPort = (stream: StreamRef, generation: number) => Promise<SuccessorOutcome>;

export interface RelayWindowResult {
  run: DrainSummary;
  /** What stopped before the drain: `superseded` (a newer generation holds the stream). */
  superseded: boolean;
  /** Time spent waiting for the predecessor's lease, ms. */
  waitedMs: number;
  /** The handover gap this window measured (predecessor's release → first read), ms; null when it was no handover. */
  gapMs: number | null;
  /** The successor handed on, or null when the chain ends here (idle non-continuous stream, superseded, aborted). */
  successor: SuccessorOutcome | null;
}

export interface RelayWindowOptions {
  startedBy?: StartedBy;
  /** Default: publish to QStash (`publishSuccessor`). */
  successor?: SuccessorPort;
  /** Stops the window at its next loop turn (in-process runner shutdown); no successor then. */
  signal?: AbortSignal;
  /** Relay without pause whatever the stream kind; default `isContinuousStream(stream)` (partitions). */
  continuous?: boolean;
}

/** Gaps kept on the checkpoint (`relay.gaps`). */
const GAPS_KEPT = 50;

function checkpoints(ctx: AppContext): Collection<CheckpointDoc> {
  return ctx.db.collection<CheckpointDoc>(COLLECTIONS.checkpoints);
}

/** Publish generation g of a stream's chain to QStash (`relayDedupId`, `relayFlowKey` at parallelism 2). */
export async function publishSuccessor(ctx: AppContext, stream: StreamRef, generation: number): Promise<SuccessorOutcome> {
  if (!ctx.publisher) return { generation, published: false, error: 'qstash_not_configured' };
  let result: PublishResult | undefined;
  try {
    [result] = await ctx.publisher.publishBatch([
      {
        url: publicUrl(ctx.config, '/api/drain'),
        body: { streamId: stream.id, generation },
        deduplicationId: relayDedupId(stream.id, generation),
        flowControlKey: relayFlowKey(stream.id),
        parallelism: RELAY_PARALLELISM,
      },
    ]);
  } catch (error) {
    return { generation, published: false, error: String((error as Error)?.message ?? error) };
  }
  if (!result || result.error) return { generation, published: false, error: result?.error ?? 'no answer' };
  return { generation, published: true, messageId: result.messageId, deduplicated: result.deduplicated };
}

/**
 * Wait until the stream's lease is free (or expired), or a generation at or above `generation`
 * holds it (superseded), or `boundMs` passed. Reads only; the lease is then taken by the drain.
 * Returns what was seen, and whether the lease was held when the wait began (a handover).
 */
async function awaitLease(
  ctx: AppContext,
  streamId: string,
  generation: number,
  boundMs: number,
): Promise<{ outcome: 'free' | 'superseded' | 'timeout'; releasedAt: Date | null; waited: boolean }> {
  const start = ctx.clock.now();
  let waited = false;
  for (;;) {
    const cp = await checkpoints(ctx).findOne({ _id: streamId }, { projection: { lease: 1, relay: 1 } });
    const now = ctx.clock.now();
    if ((cp?.relay?.generation ?? 0) >= generation) return { outcome: 'superseded', releasedAt: null, waited };
    const held = cp?.lease && cp.lease.expiresAt.getTime() > now;
    if (!held) return { outcome: 'free', releasedAt: cp?.relay?.releasedAt ?? null, waited };
    if (now - start >= boundMs) return { outcome: 'timeout', releasedAt: null, waited };
    waited = true;
    await ctx.clock.sleep(HANDOVER_POLL_MS);
  }
}

/**
 * One relay window of generation `generation` (what `POST /api/drain {streamId, generation}` runs):
 * wait for the predecessor's lease, drain under the generation fence until the deadline, hand the
 * successor on RELAY_HANDOVER_LEAD_MS before it, record the handover gap. Never throws once the
 * lease is taken (like drainStream); a superseded message returns `superseded: true` and does nothing.
 */
export async function relayWindow(ctx: AppContext, stream: StreamRef, generation: number, opts: RelayWindowOptions = {}): Promise<RelayWindowResult> {
  const { clock, config } = ctx;
  const arrivedAt = clock.now();
  const successorPort = opts.successor ?? ((s, g) => publishSuccessor(ctx, s, g));
  const wait = await awaitLease(ctx, stream.id, generation, handoverWaitMs(config));
  const waitedMs = clock.now() - arrivedAt;
  // The successor's own function limit counts from its arrival: the wait comes off its window.
  const windowMs = Math.max(1, Math.min(config.DRAIN_WINDOW_MS, maxWindowMs('drain') - waitedMs));
  const continuous = opts.continuous ?? isContinuousStream(stream);
  const handoverAt = clock.now() + windowMs - handoverLeadMs(config, windowMs);

  let successor: Promise<SuccessorOutcome> | null = null;
  const handOn = () => {
    successor ??= successorPort(stream, generation + 1).then(async (outcome) => {
      if (outcome.published) await noteRelay(ctx, stream.id, generation, { 'relay.lastPublishedAt': new Date(clock.now()) });
      return outcome;
    });
  };
  let gapMs: number | null = null;
  let gapWrite: Promise<void> | null = null;
  // A handover gap is measured only when this window followed a release of its predecessor: it
  // waited on the lease, or the lease was released less than a wait bound before it arrived.
  const releasedAt = wait.outcome === 'free' ? wait.releasedAt : null;
  const handover = releasedAt !== null && (wait.waited || arrivedAt - releasedAt.getTime() <= handoverWaitMs(config));

  const run = await drainStream(ctx, stream, {
    windowMs,
    generation,
    startedBy: opts.startedBy ?? 'relay',
    hooks: {
      continuous,
      handoverAt,
      ...(continuous ? { onHandover: handOn } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      onFirstRead: (at) => {
        if (!handover || !releasedAt) return;
        gapMs = Math.max(0, at - releasedAt.getTime());
        gapWrite = recordGap(ctx, stream.id, generation, gapMs).catch((error: unknown) => ctx.log.warn('could not record the handover gap', { streamId: stream.id, error }));
      },
    },
  });
  if (gapWrite) await gapWrite;

  const superseded = run.stoppedBy === 'superseded';
  const ran = run.status !== 'skipped' && run.stoppedBy !== 'lease_lost';
  // Continuous streams always go on; others go on while their window ended busy.
  const goesOn = ran && !opts.signal?.aborted && (continuous || run.busy);
  if (goesOn) handOn();
  else if (successor === null && ran) await noteRelay(ctx, stream.id, generation, { 'relay.live': false }).catch(squashError);
  if (ran) await noteRelay(ctx, stream.id, generation, { 'relay.handoverAt': new Date(handoverAt) }).catch(squashError);
  const handed = successor ? await (successor as Promise<SuccessorOutcome>) : null;
  if (handed && !handed.published) ctx.log.error('relay successor not published; the watchdog restarts the chain', { streamId: stream.id, generation, error: handed.error });
  return { run, superseded, waitedMs, gapMs, successor: handed };
}

/** Set relay fields while `generation` is still the stored one (a later generation's state is never overwritten). */
async function noteRelay(ctx: AppContext, streamId: string, generation: number, set: Record<string, unknown>): Promise<void> {
  await checkpoints(ctx).updateOne({ _id: streamId, 'relay.generation': generation }, { $set: set });
}

async function recordGap(ctx: AppContext, streamId: string, generation: number, gapMs: number): Promise<void> {
  await checkpoints(ctx).updateOne(
    { _id: streamId, 'relay.generation': generation },
    { $set: { 'relay.lastGapMs': gapMs }, $push: { 'relay.gaps': { $each: [gapMs], $slice: -GAPS_KEPT } } },
  );
}

/**
 * A tick or manual drain that ended busy in the continuous relay starts a chain (generation stored+1,
 * deduplicated per generation, so a redelivered busy run starts it once), instead of a plain continuation.
 */
export async function startChain(ctx: AppContext, stream: StreamRef): Promise<SuccessorOutcome> {
  const cp = await checkpoints(ctx).findOne({ _id: stream.id }, { projection: { relay: 1 } });
  const generation = (cp?.relay?.generation ?? 0) + 1;
  const outcome = await publishSuccessor(ctx, stream, generation);
  if (outcome.published) {
    await checkpoints(ctx)
      .updateOne({ _id: stream.id }, { $set: { 'relay.live': true, 'relay.lastPublishedAt': new Date(ctx.clock.now()) } })
      .catch(squashError);
  }
  return outcome;
}
