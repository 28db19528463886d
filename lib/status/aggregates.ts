import type { Document } from 'mongodb';
import type { AppContext } from '../platform/context.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { DrainSummary } from '../data/documents.js';

/** How far back the dual-run comparison looks (jobs by `createdAt`). */
export const DUAL_RUN_WINDOW_MS = 24 * 3600_000;
/** The throughput chart: this many one-minute buckets of drain runs. */
export const THROUGHPUT_BUCKETS = 30;
const BUCKET_MS = 60_000;
/** events/s is measured over the last few minutes, so it reflects now rather than the half hour. */
const RATE_WINDOW_MS = 5 * 60_000;
/** Upper bound of runs read for the chart (one per stream per minute is the normal rate). */
const MAX_RUNS = 5_000;

export interface DualRunCounts {
  /** Jobs both paths produced: the explicit call and the change stream agree. */
  both: number;
  explicitOnly: number;
  changeStreamOnly: number;
  /** Jobs neither path saw (reconcile or manual only). */
  other: number;
  total: number;
}

export interface DualRun {
  since: Date;
  /**
   * The organizations where the two paths disagree most (explicit only + change stream only,
   * largest first, then by id), at most `limit` of them, narrowed by the search.
   */
  orgs: ({ orgId: string } & DualRunCounts)[];
  /** Organizations in dual mode with jobs in the window (all of them, not only `orgs`). */
  organizations: number;
  /** Over every organization in dual mode. */
  total: DualRunCounts;
}

const ZERO: DualRunCounts = { both: 0, explicitOnly: 0, changeStreamOnly: 0, other: 0, total: 0 };

/** Rows of `DualRun.orgs` unless told otherwise. */
export const DUAL_RUN_ROWS = 20;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Dual-run agreement: of the jobs created in the window by organizations in `dual` mode, how many
 * both paths saw and how many only one did. `orgFilter` selects the organizations by
 * `organizationId` (lib/status/streams.ts `organizationsInMode`, from configuration: whatever the
 * stream layout, and without listing organizations); null = none is in dual mode. One aggregation
 * on `trigger_jobs` (the `{organizationId, createdAt}` index): per organization, then a `$facet` of
 * the totals, the count and the top `limit` rows whose organization id starts with `q`
 * (case-insensitive).
 */
export async function dualRunAgreement(ctx: AppContext, nowMs: number, orgFilter: Document | null, opts: { q?: string; limit?: number } = {}): Promise<DualRun> {
  const since = new Date(nowMs - DUAL_RUN_WINDOW_MS);
  if (orgFilter === null) return { since, orgs: [], organizations: 0, total: { ...ZERO } };
  const has = (path: string) => ({ $in: [path, '$paths'] });
  const sum = (f: string) => ({ $sum: `$${f}` });
  const [out] = await ctx.db
    .collection(COLLECTIONS.jobs)
    .aggregate<{ rows: ({ _id: string } & DualRunCounts)[]; total: DualRunCounts[]; n: { n: number }[] }>([
      { $match: { organizationId: orgFilter, createdAt: { $gte: since } } },
      { $project: { organizationId: 1, paths: { $setUnion: [{ $ifNull: ['$seenBy', []] }, [{ $ifNull: ['$createdBy', 'unknown'] }]] } } },
      {
        $group: {
          _id: '$organizationId',
          both: { $sum: { $cond: [{ $and: [has('explicit'), has('change_stream')] }, 1, 0] } },
          explicitOnly: { $sum: { $cond: [{ $and: [has('explicit'), { $not: [has('change_stream')] }] }, 1, 0] } },
          changeStreamOnly: { $sum: { $cond: [{ $and: [has('change_stream'), { $not: [has('explicit')] }] }, 1, 0] } },
          other: { $sum: { $cond: [{ $or: [has('explicit'), has('change_stream')] }, 0, 1] } },
          total: { $sum: 1 },
        },
      },
      {
        $facet: {
          total: [{ $group: { _id: null, both: sum('both'), explicitOnly: sum('explicitOnly'), changeStreamOnly: sum('changeStreamOnly'), other: sum('other'), total: sum('total') } }],
          n: [{ $count: 'n' }],
          rows: [
            ...(opts.q ? [{ $match: { _id: { $regex: `^${escapeRegex(opts.q)}`, $options: 'i' } } }] : []),
            { $addFields: { _d: { $add: ['$explicitOnly', '$changeStreamOnly'] } } },
            { $sort: { _d: -1, _id: 1 } },
            { $limit: opts.limit ?? DUAL_RUN_ROWS },
          ],
        },
      },
    ])
    .toArray();
  const t = out?.total[0];
  return {
    since,
    orgs: (out?.rows ?? []).map(({ _id, both, explicitOnly, changeStreamOnly, other, total }) => ({ orgId: _id, both, explicitOnly, changeStreamOnly, other, total })),
    organizations: out?.n[0]?.n ?? 0,
    total: t ? { both: t.both, explicitOnly: t.explicitOnly, changeStreamOnly: t.changeStreamOnly, other: t.other, total: t.total } : { ...ZERO },
  };
}

export interface ThroughputBucket {
  /** Start of the minute. */
  at: Date;
  /** Runs that started in the minute. */
  runs: number;
  failed: number;
  /** Events read in the minute: each run's events spread evenly over its span (start → end), rounded. */
  events: number;
  jobsCreated: number;
  /** Event-weighted mean insert→dispatch latency of the runs that started in the minute, ms. */
  latencyMsAvg: number | null;
  latencyMsMax: number | null;
}

export interface Throughput {
  windowMs: number;
  runs: number;
  events: number;
  /**
   * Events read per second over the last five minutes: the events of every run that overlaps them,
   * spread over each run's span, divided by the time covered. The window ends now, or at the end of
   * the latest run when that ended less than a minute ago (a run still going is recorded only when
   * it ends, so the last seconds would otherwise count as idle).
   */
  eventsPerSec: number;
  latencyMsAvg: number | null;
  latencyMsMax: number | null;
  /** Oldest first, one per minute, always THROUGHPUT_BUCKETS long. */
  series: ThroughputBucket[];
}

type RunRow = Pick<DrainSummary, 'startedAt' | 'status' | 'events' | 'jobsCreated' | 'latencyMsAvg' | 'latencyMsMax'> & Partial<Pick<DrainSummary, 'endedAt' | 'durationMs'>>;

/** A run's span in epoch ms: start → end (from `endedAt`, else `durationMs`). */
function span(run: RunRow): [number, number] {
  const start = run.startedAt.getTime();
  const end = run.endedAt ? run.endedAt.getTime() : start + Math.max(0, run.durationMs ?? 0);
  return [start, Math.max(start, end)];
}

/** The share of `events` that falls in [from, to), with the events spread evenly over the span. */
function eventsIn(events: number, [s, e]: [number, number], from: number, to: number): number {
  if (e <= s) return s >= from && s < to ? events : 0;
  const overlap = Math.min(e, to) - Math.max(s, from);
  return overlap > 0 ? (events * overlap) / (e - s) : 0;
}

/** Summarize drain runs of the last half hour into per-minute buckets, events placed where they were read. */
export function summarizeRuns(runs: RunRow[], nowMs: number): Throughput {
  const end = Math.floor(nowMs / BUCKET_MS) * BUCKET_MS + BUCKET_MS;
  const start = end - THROUGHPUT_BUCKETS * BUCKET_MS;
  const acc = Array.from({ length: THROUGHPUT_BUCKETS }, (_, i) => ({
    at: new Date(start + i * BUCKET_MS),
    runs: 0,
    failed: 0,
    events: 0,
    jobsCreated: 0,
    latWeighted: 0,
    latEvents: 0,
    latencyMsMax: null as number | null,
  }));
  const latestEnd = Math.max(-Infinity, ...runs.map((r) => span(r)[1]).filter((e) => e <= nowMs));
  const rateTo = nowMs - latestEnd < BUCKET_MS ? latestEnd : nowMs;
  const rateFrom = nowMs - RATE_WINDOW_MS;
  let recentEvents = 0;
  for (const run of runs) {
    const s = span(run);
    recentEvents += eventsIn(run.events, s, rateFrom, rateTo);
    for (let i = Math.max(0, Math.floor((s[0] - start) / BUCKET_MS)); i < THROUGHPUT_BUCKETS && start + i * BUCKET_MS <= s[1]; i++) {
      acc[i]!.events += eventsIn(run.events, s, start + i * BUCKET_MS, start + (i + 1) * BUCKET_MS);
    }
    const bucket = acc[Math.floor((s[0] - start) / BUCKET_MS)];
    if (!bucket) continue;
    bucket.runs += 1;
    if (run.status === 'failed') bucket.failed += 1;
    bucket.jobsCreated += run.jobsCreated;
    if (run.latencyMsAvg !== null && run.events > 0) {
      bucket.latWeighted += run.latencyMsAvg * run.events;
      bucket.latEvents += run.events;
    }
    if (run.latencyMsMax !== null) bucket.latencyMsMax = Math.max(bucket.latencyMsMax ?? 0, run.latencyMsMax);
  }
  const series = acc.map(({ latWeighted, latEvents, events, ...b }) => ({ ...b, events: Math.round(events), latencyMsAvg: latEvents ? Math.round(latWeighted / latEvents) : null }));
  const latEvents = acc.reduce((n, b) => n + b.latEvents, 0);
  const maxes = series.map((b) => b.latencyMsMax).filter((v): v is number => v !== null);
  const covered = Math.max(BUCKET_MS, rateTo - rateFrom);
  return {
    windowMs: THROUGHPUT_BUCKETS * BUCKET_MS,
    runs: series.reduce((n, b) => n + b.runs, 0),
    events: Math.round(acc.reduce((n, b) => n + b.events, 0)),
    eventsPerSec: Math.round((recentEvents / (covered / 1000)) * 100) / 100,
    latencyMsAvg: latEvents ? Math.round(acc.reduce((n, b) => n + b.latWeighted, 0) / latEvents) : null,
    latencyMsMax: maxes.length ? Math.max(...maxes) : null,
    series,
  };
}

/** Longest drain window a run can span (the longest function limit), so runs that began before the chart still count. */
const LONGEST_RUN_MS = 300_000;

export async function recentThroughput(ctx: AppContext, nowMs: number): Promise<Throughput> {
  const since = new Date(nowMs - THROUGHPUT_BUCKETS * BUCKET_MS - LONGEST_RUN_MS);
  const runs = await ctx.db
    .collection<RunRow>(COLLECTIONS.runs)
    .find(
      { startedAt: { $gte: since } },
      { projection: { _id: 0, startedAt: 1, endedAt: 1, durationMs: 1, status: 1, events: 1, jobsCreated: 1, latencyMsAvg: 1, latencyMsMax: 1 } },
    )
    .sort({ startedAt: -1 })
    .limit(MAX_RUNS)
    .toArray();
  return summarizeRuns(runs, nowMs);
}
