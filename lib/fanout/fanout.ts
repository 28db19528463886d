import type { AppContext } from '../platform/context.js';
import { Deadline } from '../platform/clock.js';
import { maxWindowMs } from '../platform/limits.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { CheckpointDoc, DrainSummary, StreamRef } from '../data/documents.js';
import { listStreams, resolveStream } from '../streams/refs.js';
import { drainStream } from '../drain/drain.js';
import { checkAlerts } from '../status/alerts.js';
import { publicUrl } from '../http/route.js';
import { processJobs } from '../jobs/index.js';
import type { PublishMessage } from '../qstash/publisher.js';

/** Below this much time left, the in-process fan-out does not start another drain. */
const MIN_DRAIN_WINDOW_MS = 1_000;

/** The cron minute a time falls in, `YYYYMMDDHHmm` UTC: duplicate deliveries of one tick share it. */
export function tickOf(nowMs: number): string {
  return new Date(nowMs).toISOString().slice(0, 16).replace(/[-T:]/g, '');
}

/** QStash ids and keys: keep them to a conservative alphabet. */
function idSafe(value: string): string {
  return value.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/** Flow-control key of a stream: its organization (org and source streams of one org share it), else the stream. */
export function flowKeyFor(streamId: string): string {
  const [kind, rest] = [streamId.slice(0, streamId.indexOf(':')), streamId.slice(streamId.indexOf(':') + 1)];
  return kind === 'org' || kind === 'source' ? `org-${idSafe(rest)}` : `stream-${idSafe(streamId)}`;
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
}

/**
 * Order streams for one tick: those whose lease is live are draining already and are skipped;
 * the rest go stalest first (oldest `tokenSavedAt`, never-drained first), so a cap below the
 * number of streams rotates through all of them over successive ticks.
 */
export function planTick(
  streams: StreamRef[],
  checkpoints: Pick<CheckpointDoc, '_id' | 'tokenSavedAt' | 'lease' | 'state'>[],
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
    if (cp?.state === 'paused') paused.push(stream);
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
  const deadline = Deadline.after(ctx.clock, maxWindowMs('api/cron/fanout.ts'));
  const now = ctx.clock.now();
  const tick = tickOf(now);
  const streams = await listStreams(ctx);
  const checkpoints = await ctx.db
    .collection<CheckpointDoc>(COLLECTIONS.checkpoints)
    .find({ _id: { $in: streams.map((s) => s.id) } }, { projection: { _id: 1, tokenSavedAt: 1, lease: 1, state: 1 } })
    .toArray();
  const plan = planTick(streams, checkpoints, now, ctx.config.MAX_CONCURRENT_DRAINS);
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
  };
  if (ctx.publisher) {
    const url = publicUrl(ctx.config, '/api/drain');
    const results = await ctx.publisher.publishBatch(
      plan.selected.map((s) => ({
        url,
        body: { streamId: s.id },
        deduplicationId: idSafe(`drain-${s.id}-${tick}`),
        flowControlKey: flowKeyFor(s.id),
      })),
    );
    summary.published = plan.selected.map((s, i) => ({ streamId: s.id, ...(results[i] ?? { messageId: null, deduplicated: false, error: 'no answer' }) }));
  } else {
    const { runs, notReached } = await drainSequentially(ctx, plan.selected, deadline, 'fanout');
    summary.runs = runs;
    summary.notReached = notReached;
  }
  await ctx.db.collection<{ _id: string }>(COLLECTIONS.fanoutTicks).updateOne(
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

/** Drain streams one after another until `deadline`; each drain gets at most the time left. */
export async function drainSequentially(ctx: AppContext, streams: StreamRef[], deadline: Deadline, trigger: DrainSummary['trigger']) {
  const runs: DrainSummary[] = [];
  const notReached: string[] = [];
  for (const stream of streams) {
    const left = deadline.remaining();
    if (left < MIN_DRAIN_WINDOW_MS) {
      notReached.push(stream.id);
      continue;
    }
    runs.push(await drainStream(ctx, stream, { windowMs: Math.min(ctx.config.DRAIN_WINDOW_MS, left), trigger }));
  }
  return { runs, notReached };
}

/** Drain every listed stream now, in-process, inside the caller's window (operator "all"). */
export async function drainAll(ctx: AppContext, windowMs: number, trigger: DrainSummary['trigger'] = 'manual') {
  const deadline = Deadline.after(ctx.clock, windowMs);
  return drainSequentially(ctx, await listStreams(ctx), deadline, trigger);
}

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
    deduplicationId: idSafe(`drain-cont-${streamId}-${runId}`),
    flowControlKey: flowKeyFor(streamId),
  });
}

/** What `POST /api/drain` does: resolve the stream, drain it once, continue it when it was busy. */
export async function drainOne(
  ctx: AppContext,
  target: { orgId: string } | { streamId: string },
  trigger: DrainSummary['trigger'],
): Promise<{ run: DrainSummary; continuation: ContinuationResult | null }> {
  const stream = await resolveStream(ctx, target);
  const run = await drainStream(ctx, stream, { trigger });
  const continuation = run.busy ? await publishContinuation(ctx, stream.id, run.runId) : null;
  return { run, continuation };
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
      deduplicationId: idSafe(`jobs-cont-${summary.owner}`),
      flowControlKey: 'jobs-process',
    });
  }
  return { summary, continuation };
}
