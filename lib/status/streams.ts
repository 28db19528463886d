import type { Document, Filter } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import type { Config, RolloutMode } from '../platform/config.js';
import { BadRequestError } from '../platform/errors.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { CheckpointDoc, StreamState } from '../data/documents.js';
import { listStreams } from '../streams/refs.js';
import { streamStatus } from './report.js';

/**
 * The stream rows of status, read page by page from MongoDB rather than built for every stream in
 * Node: with 10,000 organizations (`org:` streams) the whole set of checkpoints is never read
 * (`readRowPage` lists the queries).
 *
 * Order ("most lagging first"): failing streams first, then by lag, largest first (a stream whose
 * last drain did not catch up has the age of its resume point as lag, so the oldest resume point
 * comes first; one that caught up has lag 0), streams without a resume token (lag null) last, ties
 * by stream id (binary order). It is the order `byUrgency` (lib/status/page.ts) states in code.
 * Streams listed by the fan-out (lib/streams/refs.ts `listStreams`) that have no checkpoint yet
 * (never drained) are idle rows with no lag; checkpoints of streams no longer listed stay, marked
 * `listed: false`.
 */

/** Stream rows per page unless `limit` says otherwise, and the bounds of `limit`. */
export const DEFAULT_STREAM_LIMIT = 50;
export const MAX_STREAM_LIMIT = 500;

/** Which stream rows to read: a search and a page. */
export interface StreamQuery {
  /**
   * Prefix of the organization id or of the stream id, case-insensitive (`acme`, `org:acme`,
   * `partition:`); empty = every stream.
   */
  q: string;
  /** 1-based; a page past the end shows the last page. */
  page: number;
  /** Rows per page, 1–500. */
  limit: number;
}

/** Where the page is in the matching rows. */
export interface StreamPageInfo {
  q: string;
  page: number;
  pages: number;
  limit: number;
  /** Streams matching the search (all pages). */
  matched: number;
  /** The order of the rows, in words. */
  order: string;
}

export const STREAM_ORDER = 'failing first, then most lagging (oldest resume point of a stream that did not catch up first), streams without a token last, then by id';

const SEARCH = /^[A-Za-z0-9_:/.-]{0,100}$/;

/** Check a stream query; bad values are a 400 naming the parameter. */
export function streamQuery(q: { name?: string; q?: string | null; page?: string | number | null; limit?: string | number | null }): StreamQuery {
  const search = (q.q ?? '').trim();
  if (!SEARCH.test(search)) throw new BadRequestError(`${q.name ?? 'org'} must be an organization or stream id prefix of at most 100 characters (A-Z a-z 0-9 _ - : / .); got "${search.slice(0, 40)}"`);
  const int = (name: string, raw: string | number | null | undefined, fallback: number, min: number, max: number, rule: string) => {
    if (raw === null || raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new BadRequestError(`${name} must be ${rule}; got "${String(raw).slice(0, 20)}"`);
    return n;
  };
  return {
    q: search,
    page: int('page', q.page, 1, 1, 1_000_000, 'a positive integer (1 is the first page)'),
    limit: int('limit', q.limit, DEFAULT_STREAM_LIMIT, 1, MAX_STREAM_LIMIT, `an integer from 1 to ${MAX_STREAM_LIMIT}`),
  };
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Case-insensitive prefix test done in Node (for listed streams that have no checkpoint). */
export function matchesSearch(id: string, orgId: string | null, q: string): boolean {
  if (!q) return true;
  const needle = q.toLowerCase();
  return id.toLowerCase().startsWith(needle) || (orgId ?? '').toLowerCase().startsWith(needle);
}

/** The checkpoint filter of a search: stream id or organization id prefix, case-insensitive. */
export function searchFilter(q: string): Filter<CheckpointDoc> {
  if (!q) return {};
  const re = { $regex: `^${escapeRegex(q)}`, $options: 'i' };
  return { $or: [{ _id: re }, { orgId: re }] } as Filter<CheckpointDoc>;
}

/**
 * Aggregation expressions of a checkpoint's effective state, lag and gap counts at `now`: the same
 * rules as `effectiveState`, `streamStatus` and `splitGaps` (lib/status/report.ts), evaluated on the
 * server so sorting and totals need no document in Node.
 */
export function rowExpressions(nowMs: number, lostReasons: readonly string[]) {
  const now = new Date(nowMs);
  const paused = { $or: [{ $eq: ['$paused', true] }, { $eq: ['$state', 'paused'] }] };
  const live = { $and: [{ $ne: [{ $ifNull: ['$lease', null] }, null] }, { $gt: ['$lease.expiresAt', now] }] };
  const state = {
    $switch: {
      branches: [
        { case: paused, then: 'paused' },
        { case: { $and: [{ $in: ['$state', ['draining', 'recovering']] }, { $not: [live] }] }, then: 'idle' },
        { case: { $and: [{ $eq: ['$state', 'idle'] }, live] }, then: 'draining' },
      ],
      default: '$state',
    },
  };
  const hasToken = { $eq: [{ $type: '$tokenTime' }, 'date'] };
  const resumeAge = { $max: [0, { $subtract: [now, '$tokenTime'] }] };
  // caughtUp: the last run completed because the stream was idle, the stream is idle now, no recovery pending.
  const caughtUp = (effective: unknown) => ({
    $and: [{ $eq: ['$lastRun.status', 'completed'] }, { $eq: ['$lastRun.stoppedBy', 'idle'] }, { $eq: [effective, 'idle'] }, { $eq: [{ $ifNull: ['$recovery', null] }, null] }],
  });
  const lag = (effective: unknown) => ({ $cond: [hasToken, { $cond: [caughtUp(effective), 0, resumeAge] }, null] });
  const notLost = (reasonExpr: unknown) => ({ $not: [{ $in: [reasonExpr, [...lostReasons]] }] });
  const purposeCount = {
    $cond: [
      { $eq: [{ $type: '$gapsByReason' }, 'object'] },
      { $sum: { $map: { input: { $filter: { input: { $objectToArray: '$gapsByReason' }, as: 'r', cond: notLost('$$r.k') } }, as: 'r', in: { $ifNull: ['$$r.v', 0] } } } },
      { $size: { $filter: { input: { $ifNull: ['$gaps', []] }, as: 'g', cond: notLost('$$g.reason') } } },
    ],
  };
  const gaps = { $max: [0, { $subtract: [{ $ifNull: ['$gapCount', 0] }, purposeCount] }] };
  return { state, lag, purposeCount, gaps };
}

/** What the totals count, over every stream (checkpoints and listed streams without one). */
export interface StreamTotals {
  streams: number;
  byState: Record<StreamState, number>;
  /** Largest lag of any stream, ms; null when no stream has a token. */
  maxLagMs: number | null;
  /** Lost-history windows (`history_lost`, `invalid_token`) of every stream. */
  gaps: number;
  /** Scans run on purpose (manual reconcile, backfill, restart) of every stream. */
  reconciles: number;
  /** Listed streams that have no checkpoint yet (never drained; counted as idle with no lag). */
  neverDrained: number;
  /** Checkpoints of streams the fan-out no longer lists (shown with `listed: false`). */
  unlisted: number;
}

/** The stream ids the fan-out lists now (lib/streams/refs.ts `listStreams`), with their organization. */
export interface ListedStreams {
  orgOf: Map<string, string | null>;
}

/** One `listStreams` call: a `distinct` on workflows and one `data_sources` query, ids only. */
export async function listedStreams(ctx: AppContext): Promise<ListedStreams> {
  const refs = await listStreams(ctx);
  return { orgOf: new Map(refs.map((r) => [r.id, r.orgId] as const)) };
}

/** Checkpoint fields a row shows (resume tokens and recovery cursors stay on the server). */
export const ROW_PROJECTION: Document = { token: 0, 'recovery.freshToken': 0, 'recovery.cursor': 0, 'pending.freshToken': 0, 'pending.cursor': 0, 'lastRun.tokenBefore': 0, 'lastRun.tokenAfter': 0, 'lastRun.recoveries': 0 };

/** One page of stream rows, in the status order, with the totals over every stream. */
export interface RowPage {
  /** In order; `checkpoint` null for a listed stream that has none. */
  rows: { id: string; checkpoint: CheckpointDoc | null }[];
  matched: number;
  page: number;
  pages: number;
  totals: StreamTotals;
}

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** State and lag of a checkpoint's row, by the rules of the rows themselves (lib/status/report.ts). */
function rowKeyOf(cp: CheckpointDoc, nowMs: number): { state: StreamState; lagMs: number | null } {
  const row = streamStatus(null, cp, 0, nowMs, cp._id);
  return { state: row.state, lagMs: row.lagMs };
}

/** Sort key of a row: failing first (0), then lag largest first (no token = -1), then id. */
type Key = [f: number, lag: number, id: string];
function compareKeys(a: Key, b: Key): number {
  if (a[0] !== b[0]) return a[0] - b[0];
  if (a[1] !== b[1]) return b[1] - a[1];
  return byId(a[2], b[2]);
}

/**
 * Read one page of stream rows and the totals. Most checkpoints are "settled": stored state `idle`,
 * not paused, no live lease, a resume token older than now. Their effective state is `idle` and
 * their lag follows from stored fields alone (0 when the last run completed because the stream was
 * idle and no recovery is pending, else now − `tokenTime`), so they are read with plain filtered,
 * sorted, skipped and limited queries:
 *
 * - settled and behind: `find(...).sort({tokenTime: 1, _id: 1}).skip().limit()` (lag largest first),
 * - settled and caught up: `find(...).sort({_id: 1}).skip().limit()` (lag 0),
 * - the count of the first (`countDocuments`; the second is every checkpoint id less the others and
 *   the first, or two counts under a search), and the oldest `tokenTime` of the first (max lag);
 *
 * the few others (failing, paused, draining, recovering, without a token — bounded by the drains
 * running and the streams in trouble) are read whole and placed by `byUrgency`'s rule in Node; the
 * listed streams without a checkpoint come from the checkpoint ids (`distinct('_id')`) and the
 * listed ids. Gap and reconcile totals: one `$group` over the checkpoints that recorded a recovery
 * window. Nothing reads every checkpoint; the page's checkpoints are read by `_id`.
 */
export async function readRowPage(ctx: AppContext, nowMs: number, query: StreamQuery, listed: ListedStreams, lostReasons: readonly string[], states: readonly StreamState[]): Promise<RowPage> {
  const x = rowExpressions(nowMs, lostReasons);
  const now = new Date(nowMs);
  const cps = ctx.db.collection<CheckpointDoc>(COLLECTIONS.checkpoints);
  const search = searchFilter(query.q);
  const settled = { state: 'idle', paused: { $ne: true }, 'lease.expiresAt': { $not: { $gt: now } }, tokenTime: { $lt: now } };
  const caughtUp = { 'lastRun.status': 'completed', 'lastRun.stoppedBy': 'idle', recovery: null };
  const behindF = { ...settled, $nor: [caughtUp] } as Filter<CheckpointDoc>;
  const upF = { ...settled, ...caughtUp } as Filter<CheckpointDoc>;
  const othersF = { $nor: [settled] } as Filter<CheckpointDoc>;
  const and = (f: Filter<CheckpointDoc>) => (query.q ? ({ $and: [search, f] } as Filter<CheckpointDoc>) : f);
  const [checkpointIds, others, behindAll, oldest, gapTotals] = await Promise.all([
    cps.distinct('_id') as Promise<string[]>,
    cps.find(othersF, { projection: ROW_PROJECTION }).toArray(),
    cps.countDocuments(behindF),
    cps.find(behindF, { projection: { tokenTime: 1 } }).sort({ tokenTime: 1 }).limit(1).next(),
    cps
      .aggregate<{ gaps: number; reconciles: number }>([
        { $match: { $or: [{ gapCount: { $gt: 0 } }, { 'gaps.0': { $exists: true } }] } },
        { $group: { _id: null, gaps: { $sum: x.gaps }, reconciles: { $sum: x.purposeCount } } },
      ])
      .next(),
  ]);
  // Settled and unsettled split every checkpoint, so the caught-up ones are what is left.
  const upAll = Math.max(0, checkpointIds.length - others.length - behindAll);
  const [behind, up] = query.q ? await Promise.all([cps.countDocuments(and(behindF)), cps.countDocuments(and(upF))]) : [behindAll, upAll];

  // The unsettled checkpoints, with the rule the rows use (lib/status/report.ts streamStatus).
  const other = others.map((cp) => ({ cp, row: rowKeyOf(cp, nowMs) }));
  const hasCheckpoint = new Set(checkpointIds);
  const neverDrainedIds = [...listed.orgOf.keys()].filter((id) => !hasCheckpoint.has(id));

  // Totals over every stream.
  const byState = Object.fromEntries(states.map((st) => [st, 0])) as Record<StreamState, number>;
  byState.idle += behindAll + upAll + neverDrainedIds.length;
  let maxLagMs: number | null = oldest?.tokenTime ? Math.max(0, nowMs - oldest.tokenTime.getTime()) : upAll > 0 ? 0 : null;
  for (const o of other) {
    byState[o.row.state] += 1;
    if (o.row.lagMs !== null) maxLagMs = Math.max(maxLagMs ?? 0, o.row.lagMs);
  }

  // The page: the unsettled rows and the never-drained ones (both known in full) merged into the
  // settled sequence (behind, then caught up), which is read only around the page.
  const loose: { key: Key; id: string; cp: CheckpointDoc | null }[] = [
    ...other.filter((o) => matchesSearch(o.cp._id, o.cp.orgId, query.q)).map((o) => ({ key: [o.row.state === 'failing' ? 0 : 1, o.row.lagMs ?? -1, o.cp._id] as Key, id: o.cp._id, cp: o.cp })),
    ...neverDrainedIds.filter((id) => matchesSearch(id, listed.orgOf.get(id) ?? null, query.q)).map((id) => ({ key: [1, -1, id] as Key, id, cp: null })),
  ].sort((a, b) => compareKeys(a.key, b.key));
  const matched = behind + up + loose.length;
  const pages = Math.max(1, Math.ceil(matched / query.limit));
  const page = Math.min(query.page, pages);
  const from = (page - 1) * query.limit;
  const to = Math.min(matched, from + query.limit);
  // Settled rows [a, b) of their sequence cover the page: a settled row before index a has at most
  // a + |loose| - 1 = from - 1 rows before it, one at index b or later at least b >= to (or none is left).
  const a = Math.max(0, from - loose.length);
  const b = Math.min(behind + up, to);
  const window: { key: Key; id: string }[] = [];
  if (a < b && a < behind) {
    const docs = await cps.find(and(behindF), { projection: { tokenTime: 1 } }).sort({ tokenTime: 1, _id: 1 }).skip(a).limit(Math.min(b, behind) - a).toArray();
    for (const d of docs) window.push({ key: [1, Math.max(0, nowMs - (d.tokenTime as Date).getTime()), d._id], id: d._id });
  }
  if (b > behind) {
    const skip = Math.max(0, a - behind);
    const docs = await cps.find(and(upF), { projection: { _id: 1 } }).sort({ _id: 1 }).skip(skip).limit(b - behind - skip).toArray();
    for (const d of docs) window.push({ key: [1, 0, d._id], id: d._id });
  }
  // Merge: the window starts at settled position a. With a > 0 the loose rows before its first key
  // end before the page (they and the a settled rows before it number at most from); with a = 0
  // every loose row is merged from position 0.
  const firstKey = window[0]?.key;
  const skipped = firstKey && a > 0 ? loose.filter((l) => compareKeys(l.key, firstKey) < 0).length : 0;
  let pos = a + skipped;
  const after = firstKey ? loose.slice(skipped) : [];
  const picked: { id: string; cp: CheckpointDoc | null | undefined }[] = [];
  let i = 0;
  let j = 0;
  while (pos < to && (i < window.length || j < after.length)) {
    const takeLoose = j < after.length && (i >= window.length || compareKeys(after[j]!.key, window[i]!.key) < 0);
    const next = takeLoose ? { id: after[j]!.id, cp: after[j++]!.cp } : { id: window[i++]!.id, cp: undefined };
    if (pos >= from) picked.push(next);
    pos += 1;
  }
  if (!firstKey) {
    // No settled row matches (the window is empty only then): the rows are the loose ones.
    for (let k = from; k < to; k++) picked.push({ id: loose[k]!.id, cp: loose[k]!.cp });
  }
  const wanted = picked.filter((r) => r.cp === undefined).map((r) => r.id);
  const docs = wanted.length ? await cps.find({ _id: { $in: wanted } }, { projection: ROW_PROJECTION }).toArray() : [];
  const docOf = new Map(docs.map((d) => [d._id, d]));
  const rows = picked.map((r) => ({ id: r.id, checkpoint: r.cp === undefined ? (docOf.get(r.id) ?? null) : r.cp }));
  const unlisted = checkpointIds.filter((id) => !listed.orgOf.has(id)).length;
  return {
    rows,
    matched,
    page,
    pages,
    totals: { streams: checkpointIds.length + neverDrainedIds.length, byState, maxLagMs, gaps: gapTotals?.gaps ?? 0, reconciles: gapTotals?.reconciles ?? 0, neverDrained: neverDrainedIds.length, unlisted },
  };
}

/**
 * The organizations in one rollout mode, as a filter on `organizationId` built from configuration
 * alone (lib/streams/rollout.ts `rolloutModeFor`), so no organization list is read to select them.
 * Null when no organization can be in that mode.
 */
export function organizationsInMode(cfg: Config, mode: Exclude<RolloutMode, 'explicit'>): Filter<Document> | null {
  if (!cfg.USE_CHANGE_STREAMS) return null;
  const overrides = Object.entries(cfg.TRIGGER_MODE_BY_ORG ?? {});
  const overriddenTo = overrides.filter(([, m]) => m === mode).map(([o]) => o);
  const overriddenAway = overrides.filter(([, m]) => m !== mode).map(([o]) => o);
  if (cfg.CHANGE_STREAMS_ALL_ORGS) {
    if (cfg.TRIGGER_MODE === mode) return overriddenAway.length ? { $type: 'string', $nin: overriddenAway } : { $type: 'string' };
    return overriddenTo.length ? { $in: overriddenTo } : null;
  }
  const allowed = cfg.CHANGE_STREAMS_ORG_IDS ?? [];
  const ids = allowed.filter((o) => (cfg.TRIGGER_MODE_BY_ORG?.[o] ?? cfg.TRIGGER_MODE) === mode);
  return ids.length ? { $in: ids } : null;
}
