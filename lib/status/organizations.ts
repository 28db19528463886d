import type { AppContext } from '../platform/context.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { CheckpointDoc, JobStatus } from '../data/documents.js';
import { dataSources } from '../streams/sources.js';
import { partitionStreams, platformStreamOf, sourceStream } from '../streams/refs.js';
import { BadRequestError } from '../platform/errors.js';

/**
 * The stream side of status at scale (`GET /api/status?view=streams`): every partition with its
 * lag, token age and last run, the server's open cursors, and one page of organizations with the
 * stream that serves each (computed, never stored per organization), its lag, the organization's
 * last event and its jobs of the last 24 hours by status. A page costs four queries whatever the
 * number of organizations; `org` narrows the page to ids starting with it.
 */

export interface PartitionStatus {
  id: string;
  /** now − the saved token's cluster time, ms; null before the first token. */
  lagMs: number | null;
  /** now − when the token was last saved, ms. */
  tokenAgeMs: number | null;
  state: CheckpointDoc['state'] | null;
  lastRun: { events: number; jobsCreated: number; duplicates: number; startedAt: Date; durationMs: number } | null;
}

export interface OrganizationStatus {
  orgId: string;
  /** The stream that serves it: `partition:{p}/{P}`, `org:{orgId}` or `source:{orgId}`. */
  servedBy: string;
  /** Lag of that stream (ms), null before its first token. */
  lagMs: number | null;
  /** Wall time of the newest event behind one of its jobs of the last 24 hours. */
  lastEventAt: Date | null;
  /** Jobs created in the last 24 hours, by status. */
  jobs: Record<JobStatus, number>;
}

export interface StreamsView {
  generatedAt: Date;
  layout: 'database' | 'collection';
  partitions: PartitionStatus[];
  /** serverStatus `metrics.cursor.open.total` (every open cursor on the server), null when not readable. */
  cursorsOpen: number | null;
  organizations: OrganizationStatus[];
  page: number;
  limit: number;
  /** Organizations with a workflow matching the search (all pages). */
  total: number;
}

const DAY_MS = 24 * 3600_000;
const JOB_STATUSES: JobStatus[] = ['queued', 'running', 'succeeded', 'failed', 'dead'];

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Read the streams view. `org`: id prefix; `page` 0-based; `limit` 1–500. Bad values are a 400. */
export async function readStreamsView(ctx: AppContext, q: { org?: string; page?: number; limit?: number } = {}): Promise<StreamsView> {
  const page = q.page ?? 0;
  const limit = q.limit ?? 50;
  if (!Number.isInteger(page) || page < 0) throw new BadRequestError('page must be an integer >= 0');
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new BadRequestError('limit must be an integer from 1 to 500');
  if (q.org !== undefined && !/^[A-Za-z0-9_-]{0,64}$/.test(q.org)) throw new BadRequestError('org must be an organization id prefix (A-Z a-z 0-9 _ -)');
  const now = ctx.clock.now();
  const cfg = ctx.config;
  const match = q.org ? { organizationId: { $regex: `^${escapeRegex(q.org)}` } } : { organizationId: { $type: 'string' } };
  const [orgPage, cursorsOpen] = await Promise.all([
    ctx.db
      .collection(COLLECTIONS.workflows)
      .aggregate<{ ids: { _id: string }[]; total: { n: number }[] }>([
        { $match: match },
        { $group: { _id: '$organizationId' } },
        { $sort: { _id: 1 } },
        { $facet: { ids: [{ $skip: page * limit }, { $limit: limit }], total: [{ $count: 'n' }] } },
      ])
      .toArray(),
    ctx.db
      .admin()
      .command({ serverStatus: 1 })
      .then((s) => {
        const total = (s as { metrics?: { cursor?: { open?: { total?: unknown } } } }).metrics?.cursor?.open?.total;
        return total === undefined || total === null ? null : Number(total);
      })
      .catch(() => null),
  ]);
  const orgIds = (orgPage[0]?.ids ?? []).map((r) => r._id);
  const [sources, jobs] = await Promise.all([
    dataSources(ctx.db).find({ organizationId: { $in: orgIds } }, { projection: { organizationId: 1, db: 1, collection: 1 } }).toArray(),
    ctx.db
      .collection(COLLECTIONS.jobs)
      .aggregate<{ _id: { org: string; status: JobStatus }; n: number; last: Date | null }>([
        { $match: { organizationId: { $in: orgIds }, createdAt: { $gte: new Date(now - DAY_MS) } } },
        { $group: { _id: { org: '$organizationId', status: '$status' }, n: { $sum: 1 }, last: { $max: '$eventWallTime' } } },
      ])
      .toArray(),
  ]);
  const sourceOf = new Map(sources.map((s) => [s.organizationId, sourceStream(s.organizationId, s.db, s.collection).id]));
  const servedBy = new Map(orgIds.map((o) => [o, sourceOf.get(o) ?? platformStreamOf(cfg, o).id]));
  const partitionIds = cfg.STREAM_LAYOUT === 'database' ? partitionStreams(cfg.STREAM_PARTITIONS).map((s) => s.id) : [];
  const checkpoints = await ctx.db
    .collection<CheckpointDoc>(COLLECTIONS.checkpoints)
    .find({ _id: { $in: [...new Set([...partitionIds, ...servedBy.values()])] } }, { projection: { gaps: 0, recovery: 0 } })
    .toArray();
  const cp = new Map(checkpoints.map((c) => [c._id, c]));
  const lagOf = (id: string) => {
    const t = cp.get(id)?.tokenTime;
    return t ? now - new Date(t).getTime() : null;
  };
  const partitions: PartitionStatus[] = partitionIds.map((id) => {
    const c = cp.get(id);
    const run = c?.lastRun;
    return {
      id,
      lagMs: lagOf(id),
      tokenAgeMs: c?.tokenSavedAt ? now - new Date(c.tokenSavedAt).getTime() : null,
      state: c?.state ?? null,
      lastRun: run ? { events: run.events, jobsCreated: run.jobsCreated, duplicates: run.duplicates, startedAt: run.startedAt, durationMs: run.durationMs } : null,
    };
  });
  const organizations: OrganizationStatus[] = orgIds.map((orgId) => {
    const byStatus = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
    let last: Date | null = null;
    for (const j of jobs) {
      if (j._id.org !== orgId) continue;
      byStatus[j._id.status] = j.n;
      if (j.last && (!last || j.last > last)) last = j.last;
    }
    const stream = servedBy.get(orgId)!;
    return { orgId, servedBy: stream, lagMs: lagOf(stream), lastEventAt: last, jobs: byStatus };
  });
  return { generatedAt: new Date(now), layout: cfg.STREAM_LAYOUT, partitions, cursorsOpen, organizations, page, limit, total: orgPage[0]?.total[0]?.n ?? 0 };
}
