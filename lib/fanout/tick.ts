import type { AppContext } from '../platform/context.js';
import { isPaused } from '../streams/pause.js';
import { Deadline } from '../platform/clock.js';
import { maxWindowMs } from '../platform/limits.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { CheckpointDoc, DrainSummary, FanoutTickDoc } from '../data/documents.js';
import type { StreamRef } from '../streams/refs.js';
import { listStreams } from '../streams/refs.js';
import { checkAlerts } from '../status/alerts.js';
import { drainSequentially } from './drains.js';
import { drainDedupId, flowKeyFor, publicUrl } from '../qstash/messages.js';
import { relayMode, type RelayMode } from './relay.js';
import { planWatchdog, restartChains, type RestartOutcome } from './watchdog.js';
import { kickPendingRecoveries, partitionOfRecovery, runRecovery, type RecoveryKickOutcome } from '../drain/recovery-run.js';

/** The cron tick: plan which streams drain now and publish one drain each (or drain in-process without QStash). */

/** The cron minute a time falls in, `YYYYMMDDHHmm` UTC: duplicate deliveries of one tick share it. */
export function tickOf(nowMs: number): string {
  return new Date(nowMs).toISOString().slice(0, 16).replace(/[-T:]/g, '');
}

export interface FanoutSummary {
  tick: string;
  mode: 'qstash' | 'in_process';
  /** Streams listed for this tick. */
  streams: number;
  /** Streams skipped because a drain holds their lease right now. */
  leased: string[];
  /** Paused streams, not published. */
  paused: string[];
  /** Streams left for a later tick by MAX_CONCURRENT_DRAINS. */
  deferred: string[];
  published: { streamId: string; messageId: string | null; deduplicated: boolean; error?: string }[];
  /** In-process mode: the drains run, and the streams the window did not reach. */
  runs: DrainSummary[];
  notReached: string[];
  alertsSent: number;
  /**
   * The continuous relay's watchdog (RELAY=continuous with QStash): relayed streams whose chain is
   * alive, and the chains this tick restarted. In the tick relay, `mode: 'tick'` and empty lists.
   */
  relay: { mode: RelayMode; live: string[]; restarted: RestartOutcome[] };
  /**
   * Partition recoveries with a window pending and no live lease (never started, or abandoned by a
   * run that died), asked for again by this tick (lib/drain/recovery-run.ts).
   */
  recoveries?: { streamId: string; outcome: RecoveryKickOutcome }[];
}

/**
 * Order streams for one tick: those whose lease is live are draining already and are skipped;
 * the rest go stalest first (oldest `tokenSavedAt`, never-drained first), so a cap below the
 * number of streams rotates through all of them over successive ticks.
 */
export function planTick(
  streams: StreamRef[],
  checkpoints: Pick<CheckpointDoc, '_id' | 'tokenSavedAt' | 'lease' | 'state' | 'paused'>[],
  nowMs: number,
  cap: number,
) {
  const byId = new Map(checkpoints.map((c) => [c._id, c]));
  const leased: StreamRef[] = [];
  const paused: StreamRef[] = [];
  const ready: { stream: StreamRef; savedAt: number }[] = [];
  for (const stream of streams) {
    const cp = byId.get(stream.id);
    // A paused stream is skipped by every drain anyway; publishing it would only spend budget.
    if (isPaused(cp)) paused.push(stream);
    else if (cp?.lease && cp.lease.expiresAt.getTime() > nowMs) leased.push(stream);
    else ready.push({ stream, savedAt: cp?.tokenSavedAt?.getTime() ?? -Infinity });
  }
  ready.sort((a, b) => a.savedAt - b.savedAt || a.stream.id.localeCompare(b.stream.id));
  const budget = Math.max(0, cap - leased.length);
  return {
    leased,
    paused,
    selected: ready.slice(0, budget).map((r) => r.stream),
    deferred: ready.slice(budget).map((r) => r.stream),
  };
}

/**
 * The cron tick: publish one drain per stream to QStash (dedup id per stream and tick, flow control
 * per organization, at most MAX_CONCURRENT_DRAINS live drains), or without QStash drain them here one
 * after another inside this function's own window. Then evaluate alerts.
 */
export async function fanOut(ctx: AppContext): Promise<FanoutSummary> {
  const deadline = Deadline.after(ctx.clock, maxWindowMs('fanout'));
  const now = ctx.clock.now();
  const tick = tickOf(now);
  const streams = await listStreams(ctx);
  const checkpoints = await ctx.db
    .collection<CheckpointDoc>(COLLECTIONS.checkpoints)
    .find({ _id: { $in: streams.map((s) => s.id) } }, { projection: { _id: 1, tokenSavedAt: 1, lease: 1, state: 1, paused: 1, relay: 1 } })
    .toArray();
  // In the continuous relay (through QStash) relayed streams are watched, not ticked; the rest tick.
  const mode = relayMode(ctx.config);
  const watch = mode === 'continuous' && ctx.publisher ? planWatchdog(streams, checkpoints, now, ctx.config.RELAY_WATCHDOG_AFTER_MS) : null;
  const plan = planTick(watch ? watch.ticked : streams, checkpoints, now, ctx.config.MAX_CONCURRENT_DRAINS);
  const summary: FanoutSummary = {
    tick,
    mode: ctx.publisher ? 'qstash' : 'in_process',
    streams: streams.length,
    leased: plan.leased.map((s) => s.id),
    paused: plan.paused.map((s) => s.id),
    deferred: plan.deferred.map((s) => s.id),
    published: [],
    runs: [],
    notReached: [],
    alertsSent: 0,
    relay: { mode, live: watch?.live.map((s) => s.id) ?? [], restarted: [] },
  };
  if (watch) {
    summary.paused.push(...watch.paused.map((s) => s.id));
    summary.relay.restarted = await restartChains(ctx, watch, tick);
  }
  const recoveries = await kickPendingRecoveries(ctx);
  if (recoveries.length) summary.recoveries = recoveries;
  if (ctx.publisher) {
    const url = publicUrl(ctx.config, '/api/drain');
    const results = await ctx.publisher.publishBatch(
      plan.selected.map((s) => ({
        url,
        body: { streamId: s.id },
        deduplicationId: drainDedupId(s.id, tick),
        flowControlKey: flowKeyFor(s.id),
      })),
    );
    summary.published = plan.selected.map((s, i) => ({ streamId: s.id, ...(results[i] ?? { messageId: null, deduplicated: false, error: 'no answer' }) }));
  } else {
    const { runs, notReached } = await drainSequentially(ctx, plan.selected, deadline, 'fanout');
    summary.runs = runs;
    summary.notReached = notReached;
    // No QStash and no in-process port: the tick runs the pending recoveries itself, in what is left of its window.
    for (const r of recoveries) {
      if (r.outcome.reason !== 'no_runner' || deadline.remaining() < 1_000) continue;
      const partition = partitionOfRecovery(r.streamId);
      summary.runs.push((await runRecovery(ctx, partition, { windowMs: Math.min(ctx.config.DRAIN_WINDOW_MS, deadline.remaining()), startedBy: 'fanout', continueAfter: false })).run);
    }
  }
  await ctx.db.collection<FanoutTickDoc>(COLLECTIONS.fanoutTicks).updateOne(
    { _id: tick },
    {
      $setOnInsert: { firstAt: new Date(now) },
      $set: { lastAt: new Date(ctx.clock.now()), mode: summary.mode, streams: summary.streams, selected: plan.selected.length, deferred: summary.deferred.length },
      $inc: { deliveries: 1 },
    },
    { upsert: true },
  );
  if (ctx.config.ALERT_WEBHOOK_URL) {
    try {
      summary.alertsSent = (await checkAlerts(ctx)).sent.length;
    } catch (error) {
      // An unreachable alert receiver must not fail the tick; the next tick evaluates again.
      ctx.log.warn('alert evaluation failed', { error });
    }
  }
  return summary;
}
