import type { Document, Filter } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import type { Config, RolloutMode } from '../platform/config.js';
import { BadRequestError } from '../platform/errors.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { CheckpointDoc, StreamState } from '../data/documents.js';
import { listStreams } from '../streams/refs.js';

/**
 * The stream rows of status, read page by page from MongoDB rather than built for every stream in
 * Node: with 10,000 organizations (`org:` streams) the whole set of checkpoints is never read.
 *
 * - One page of rows: an aggregation on `trigger_checkpoints` that computes each row's sort key with
 *   the request's `now`, sorts, skips and limits, and projects only what a row shows.
 * - Totals (streams by state, max lag, gaps, reconciles): one `$group` over the checkpoints, the
 *   per-stream values computed on the server.
 * - Streams listed by the fan-out (lib/streams/refs.ts `listStreams`) that have no checkpoint yet
 *   (never drained): counted as `idle` with no lag; their ids are read only for a page that reaches
 *   them (they sort last).
 * - Checkpoints of streams no longer listed stay in the rows, marked `listed: false`.
 *
 * Order ("most lagging first"): failing streams first, then by lag, largest first (a stream whose
 * last drain did not catch up has the age of its resume point as lag, so the oldest resume point
 * comes first; one that caught up has lag 0), streams without a resume token (lag null) last, ties
 * by stream id (binary order). It is the order `byUrgency` (lib/status/page.ts) states in code.
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
export const ROW_PROJECTION: Document = { token: 0, 'recovery.freshToken': 0, 'recovery.cursor': 0, 'lastRun.tokenBefore': 0, 'lastRun.tokenAfter': 0, 'lastRun.recoveries': 0 };

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

/**
 * Read one page of stream rows and the totals. Queries, whatever the number of streams:
 *
 * 1. `distinct('_id')` on the checkpoints (the `_id` index; ids only) — with the listed ids, which
 *    streams have no checkpoint yet and which checkpoints are no longer listed;
 * 2. one aggregation over the checkpoints, projected to the fields the order and the totals need,
 *    with a `$facet` of the totals (`$group` by effective state: count, max lag, gaps, reconciles),
 *    the matching count and the page (`$match` search, `$sort`, `$skip`, `$limit`, ids only) — one
 *    pass over the collection;
 * 3. the page's checkpoints by `_id` (`$in` of at most `limit` ids), without tokens.
 *
 * The rows after every checkpoint that has a token (checkpoints without a token and listed streams
 * without a checkpoint, by id) are assembled in Node from the ids of step 1 when a page reaches them.
 */
export async function readRowPage(ctx: AppContext, nowMs: number, query: StreamQuery, listed: ListedStreams, lostReasons: readonly string[], states: readonly StreamState[]): Promise<RowPage> {
  const x = rowExpressions(nowMs, lostReasons);
  const cps = ctx.db.collection<CheckpointDoc>(COLLECTIONS.checkpoints);
  const search = searchFilter(query.q);
  const isTail = { $and: [{ $eq: ['$_f', 1] }, { $eq: ['$_lag', -1] }] };
  const facet = (from: number, limit: number) =>
    cps
      .aggregate<{ totals: { _id: StreamState; n: number; maxLag: number | null }[]; gapTotals: { gaps: number; reconciles: number }[]; headCount: { n: number }[]; tail: { _id: string }[]; head: { _id: string }[] }>([
        { $project: { orgId: 1, state: 1, paused: 1, lease: 1, tokenTime: 1, 'lastRun.status': 1, 'lastRun.stoppedBy': 1, recovery: { $cond: [{ $eq: [{ $ifNull: ['$recovery', null] }, null] }, null, true] }, gapCount: 1, gapsByReason: 1, 'gaps.reason': 1 } },
        { $addFields: { _s: x.state, _f: { $cond: [{ $and: [{ $eq: ['$state', 'failing'] }, { $ne: ['$paused', true] }] }, 0, 1] }, _lag: { $ifNull: [x.lag(x.state), -1] } } },
        {
          $facet: {
            totals: [{ $group: { _id: '$_s', n: { $sum: 1 }, maxLag: { $max: { $cond: [{ $gte: ['$_lag', 0] }, '$_lag', null] } } } }],
            // Gap counts only where a recovery window was ever recorded (most streams have none).
            gapTotals: [{ $match: { $or: [{ gapCount: { $gt: 0 } }, { 'gaps.0': { $exists: true } }] } }, { $group: { _id: null, gaps: { $sum: x.gaps }, reconciles: { $sum: x.purposeCount } } }],
            // Matching rows: those with a sort key before the tail, counted; the tail's ids, listed (few: no token yet).
            headCount: [{ $match: search }, { $match: { $expr: { $not: [isTail] } } }, { $count: 'n' }],
            tail: [{ $match: search }, { $match: { $expr: isTail } }, { $project: { _id: 1 } }],
            head: [{ $match: search }, { $match: { $expr: { $not: [isTail] } } }, { $sort: { _f: 1, _lag: -1, _id: 1 } }, { $skip: from }, { $limit: limit }, { $project: { _id: 1 } }],
          },
        },
      ])
      .toArray()
      .then((r) => r[0]!);
  const from0 = (query.page - 1) * query.limit;
  const [checkpointIds, first] = await Promise.all([cps.distinct('_id') as Promise<string[]>, facet(from0, query.limit)]);
  const hasCheckpoint = new Set(checkpointIds);
  const neverDrainedIds = [...listed.orgOf.keys()].filter((id) => !hasCheckpoint.has(id));
  const neverDrainedMatching = neverDrainedIds.filter((id) => matchesSearch(id, listed.orgOf.get(id) ?? null, query.q));
  const headCount = first.headCount[0]?.n ?? 0;
  const tailCheckpoints = first.tail.map((d) => d._id);
  const matched = headCount + tailCheckpoints.length + neverDrainedMatching.length;
  const pages = Math.max(1, Math.ceil(matched / query.limit));
  const page = Math.min(query.page, pages);
  const from = (page - 1) * query.limit;
  const to = Math.min(matched, from + query.limit);
  // A page past the end shows the last page: read its head again (rare).
  const head = from === from0 ? first.head : from < headCount ? (await facet(from, query.limit)).head : [];
  const ids: { id: string; cp: boolean }[] = head.slice(0, Math.max(0, Math.min(to, headCount) - from)).map((d) => ({ id: d._id, cp: true }));
  if (to > headCount) {
    const tail = [...tailCheckpoints.map((id) => ({ id, cp: true })), ...neverDrainedMatching.map((id) => ({ id, cp: false }))].sort((a, b) => byId(a.id, b.id));
    ids.push(...tail.slice(Math.max(0, from - headCount), to - headCount));
  }
  const wanted = ids.filter((r) => r.cp).map((r) => r.id);
  const docs = wanted.length ? await cps.find({ _id: { $in: wanted } }, { projection: ROW_PROJECTION }).toArray() : [];
  const docOf = new Map(docs.map((d) => [d._id, d]));
  const rows = ids.map((r) => ({ id: r.id, checkpoint: r.cp ? (docOf.get(r.id) ?? null) : null }));

  const byState = Object.fromEntries(states.map((s) => [s, 0])) as Record<StreamState, number>;
  let maxLagMs: number | null = null;
  for (const g of first.totals) {
    byState[g._id] = (byState[g._id] ?? 0) + g.n;
    if (typeof g.maxLag === 'number') maxLagMs = Math.max(maxLagMs ?? 0, g.maxLag);
  }
  const gaps = first.gapTotals[0]?.gaps ?? 0;
  const reconciles = first.gapTotals[0]?.reconciles ?? 0;
  byState.idle += neverDrainedIds.length;
  const unlisted = checkpointIds.filter((id) => !listed.orgOf.has(id)).length;
  return {
    rows,
    matched,
    page,
    pages,
    totals: { streams: checkpointIds.length + neverDrainedIds.length, byState, maxLagMs, gaps, reconciles, neverDrained: neverDrainedIds.length, unlisted },
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
