import type { Collection } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { AlertStateDoc } from '../data/documents.js';
import { systemClock } from '../platform/clock.js';
import { clockTimer } from '../platform/deadline.js';
import type { Filter } from 'mongodb';
import type { CheckpointDoc } from '../data/documents.js';
import { readStreamRows, type StatusReport } from './report.js';

/**
 * Alerts: a JSON POST to ALERT_WEBHOOK_URL when something changes for the worse — a stream becomes
 * `failing`, a gap is recorded, a dead-letter queue grows, a resume point ages toward the end of the
 * oplog window. The last alerted state of each condition is kept in `trigger_alerts`, so one change
 * sends one alert however often the check runs, and concurrent checks claim a change only once.
 */

export type AlertKind = 'stream_failing' | 'gap_recorded' | 'gap_unplaced' | 'dead_letters_grew' | 'oplog_window_near';

export interface Alert {
  kind: AlertKind;
  /** `firing` when the condition starts (or a counter grows), `resolved` when a state condition ends. */
  status: 'firing' | 'resolved';
  key: string;
  streamId: string | null;
  message: string;
  value: number;
  previous: number | null;
  at: Date;
}

export interface AlertOptions {
  /** Oplog window assumed for the token-age alert. Default 24 h (size the oplog for at least that). */
  oplogWindowMs?: number;
  /** Alert when a resume point is older than this fraction of the window. Default 0.5. */
  nearFraction?: number;
  /** Default: global fetch. */
  fetch?: typeof fetch;
  /** Per POST. Default 5 s. */
  timeoutMs?: number;
}

/** A condition as evaluated now: `state` ones fire and resolve, `counter` ones fire when they grow. */
export interface Condition {
  key: string;
  kind: AlertKind;
  type: 'state' | 'counter';
  streamId: string | null;
  /** For state conditions 1 (on) or 0 (off); for counters the count. */
  value: number;
  message: string;
}

const DEFAULT_OPLOG_WINDOW_MS = 24 * 3600_000;

/** What the conditions are evaluated on: stream rows (those `alertStreams` selects) and the dead-letter sizes. */
export type AlertInput = Pick<StatusReport, 'streams' | 'deadLetters'>;

export function evaluateConditions(report: AlertInput, opts: AlertOptions = {}): Condition[] {
  const window = opts.oplogWindowMs ?? DEFAULT_OPLOG_WINDOW_MS;
  const near = window * (opts.nearFraction ?? 0.5);
  const out: Condition[] = [];
  for (const s of report.streams) {
    out.push({
      key: `failing:${s.id}`,
      kind: 'stream_failing',
      type: 'state',
      streamId: s.id,
      value: s.state === 'failing' ? 1 : 0,
      message: s.state === 'failing' ? `stream ${s.id} is failing (${s.consecutiveFailures} failed runs in a row)` : `stream ${s.id} recovered (${s.state})`,
    });
    // The resume point's age, not the lag: an idle stream's point must stay inside the oplog window too.
    const old = s.resumeAgeMs !== null && s.resumeAgeMs >= near;
    out.push({
      key: `oplog:${s.id}`,
      kind: 'oplog_window_near',
      type: 'state',
      streamId: s.id,
      value: old ? 1 : 0,
      message: old
        ? `resume point of ${s.id} is ${Math.round((s.resumeAgeMs ?? 0) / 60_000)} min old, past ${Math.round(near / 60_000)} min of a ${Math.round(window / 60_000)} min oplog window`
        : `resume point of ${s.id} is fresh again`,
    });
    out.push({ key: `gaps:${s.id}`, kind: 'gap_recorded', type: 'counter', streamId: s.id, value: s.gaps.count, message: `gap recorded on ${s.id}` });
    // Documents a recovery found only by `_id` time: their writers' clocks or data need a look.
    out.push({ key: `unplaced:${s.id}`, kind: 'gap_unplaced', type: 'counter', streamId: s.id, value: s.gaps.unplaced, message: `recovery scans of ${s.id} found submissions their submittedAt does not place` });
  }
  out.push({ key: 'dlq:events', kind: 'dead_letters_grew', type: 'counter', streamId: null, value: report.deadLetters.events, message: 'trigger dead-letter queue grew' });
  out.push({ key: 'dlq:jobs', kind: 'dead_letters_grew', type: 'counter', streamId: null, value: report.deadLetters.jobs, message: 'dead jobs grew' });
  return out;
}

/** The alert a condition change deserves, or null (no change, a counter shrinking, a state that was never on). */
export function transition(cond: Condition, previous: number | null, at: Date): Alert | null {
  const prev = previous ?? 0;
  const base = { kind: cond.kind, key: cond.key, streamId: cond.streamId, value: cond.value, previous, at };
  if (cond.type === 'counter') {
    if (cond.value <= prev) return null;
    return { ...base, status: 'firing', message: `${cond.message}: ${prev} → ${cond.value}` };
  }
  if (cond.value === prev) return null;
  return { ...base, status: cond.value ? 'firing' : 'resolved', message: cond.message };
}

/**
 * The stream rows the alert conditions need, and no others: streams failing, with a recorded
 * recovery window, with a resume point past the threshold, and streams whose stored condition is
 * on (so a stream that recovered resolves it, a counter that shrank is re-based). Every other
 * stream has all its conditions at 0 and nothing stored, which sends nothing. One query on the
 * checkpoints, whatever the number of streams.
 */
export async function alertStreams(ctx: AppContext, opts: AlertOptions, storedOn: readonly string[]): Promise<AlertInput> {
  const window = opts.oplogWindowMs ?? DEFAULT_OPLOG_WINDOW_MS;
  const oldBefore = new Date(ctx.clock.now() - window * (opts.nearFraction ?? 0.5));
  const filter = {
    $or: [{ state: 'failing' }, { gapCount: { $gt: 0 } }, { 'gaps.unplaced': { $gt: 0 } }, { tokenTime: { $lte: oldBefore } }, ...(storedOn.length ? [{ _id: { $in: [...storedOn] } }] : [])],
  } as Filter<CheckpointDoc>;
  const [streams, events, jobs] = await Promise.all([
    readStreamRows(ctx, filter, () => false, Number.MAX_SAFE_INTEGER),
    ctx.db.collection(COLLECTIONS.deadLetters).countDocuments({ replayedAt: null }),
    ctx.db.collection(COLLECTIONS.jobs).countDocuments({ status: 'dead' }),
  ]);
  return { streams, deadLetters: { events, jobs } };
}

/** The stream id a stored condition key names (`failing:org:acme` → `org:acme`), null for global ones. */
function streamOfKey(key: string): string | null {
  const colon = key.indexOf(':');
  const kind = key.slice(0, colon);
  return ['failing', 'oplog', 'gaps', 'unplaced'].includes(kind) ? key.slice(colon + 1) : null;
}

/**
 * Evaluate every condition and send one POST per change. A change is claimed by a conditional write
 * before sending; if the POST fails the claim is undone, so the next check tries again.
 */
export async function checkAlerts(ctx: AppContext, opts: AlertOptions = {}): Promise<{ sent: Alert[]; failed: number }> {
  const url = ctx.config.ALERT_WEBHOOK_URL?.reveal();
  if (!url) return { sent: [], failed: 0 };
  opts = { oplogWindowMs: ctx.config.ALERT_OPLOG_WINDOW_HOURS * 3600_000, ...opts };
  const store = ctx.db.collection<AlertStateDoc>(COLLECTIONS.alerts);
  const stored = new Map((await store.find({}).toArray()).map((d) => [d._id, d.value]));
  const storedOn = [...new Set([...stored].filter(([, v]) => v !== 0).map(([k]) => streamOfKey(k)).filter((id): id is string => id !== null))];
  const status = await alertStreams(ctx, opts, storedOn);
  const now = new Date(ctx.clock.now());
  const sent: Alert[] = [];
  let failed = 0;
  for (const cond of evaluateConditions(status, opts)) {
    const previous = stored.has(cond.key) ? (stored.get(cond.key) as number) : null;
    const alert = transition(cond, previous, now);
    if (!alert) {
      // A counter that shrank (dead letters replayed) is re-based silently, so its next growth alerts.
      if (previous !== null && cond.value < previous) await claim(store, cond.key, previous, cond.value, now);
      continue;
    }
    if (!(await claim(store, cond.key, previous, cond.value, now))) continue;
    if (await post(url, alert, opts)) {
      sent.push(alert);
      await store.updateOne({ _id: cond.key }, { $set: { lastSentAt: now } });
    } else {
      failed += 1;
      ctx.log.warn('alert delivery failed', { kind: alert.kind, key: alert.key });
      await unclaim(store, cond.key, previous, cond.value);
    }
  }
  return { sent, failed };
}

/** Move a condition from `previous` to `value`; false when another check already moved it. */
async function claim(store: Collection<AlertStateDoc>, key: string, previous: number | null, value: number, now: Date): Promise<boolean> {
  if (previous === null) {
    try {
      await store.insertOne({ _id: key, value, updatedAt: now });
      return true;
    } catch (error) {
      if ((error as { code?: unknown }).code === 11000) return false;
      throw error;
    }
  }
  const result = await store.updateOne({ _id: key, value: previous }, { $set: { value, updatedAt: now } });
  return result.modifiedCount === 1;
}

async function unclaim(store: Collection<AlertStateDoc>, key: string, previous: number | null, value: number): Promise<void> {
  if (previous === null) await store.deleteOne({ _id: key, value });
  else await store.updateOne({ _id: key, value }, { $set: { value: previous } });
}

async function post(url: string, alert: Alert, opts: AlertOptions): Promise<boolean> {
  const doFetch = opts.fetch ?? fetch;
  // Wall-clock timer (not the context's clock): a receiver that hangs must not hold the tick.
  const timer = clockTimer(systemClock, opts.timeoutMs ?? 5_000, () => new Error('alert receiver did not answer in time'));
  try {
    const res = await doFetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'mongo-stream-triggers-alerts' },
      body: JSON.stringify({ source: 'mongo-stream-triggers', alert }),
      signal: timer.signal,
    });
    await res.body?.cancel().catch(() => undefined);
    return res.ok;
  } catch {
    return false;
  } finally {
    timer.cancel();
  }
}
