import type { AppContext } from '../platform/context.js';
import { COLLECTIONS } from '../data/mongo.js';

/** Dead-job groups shown (largest first). */
const DEAD_GROUPS = 20;

/** Dead jobs of one workflow that ended with one error code. */
export interface DeadGroup {
  workflowId: string;
  workflowName: string | null;
  /** Organizations of the group's jobs (a workflow belongs to one; listed for searching). */
  organizationId: string | null;
  /** `lastError.code`, or `unknown` for jobs dead without one (e.g. `lease_expired`). */
  code: string;
  /** The latest job's error message (URLs in it carry no query string or credentials). */
  message: string | null;
  jobs: number;
  lastAt: Date | null;
}

/** The jobs view of the status model. */
export interface JobsView {
  queued: {
    /** Queued and never attempted. */
    waitingFirstAttempt: number;
    /** Queued again after a failed attempt (attempts > 0), waiting for its backoff. */
    retrying: number;
  };
  /** Dead jobs grouped by workflow and error code, most jobs first (at most 20 groups). */
  dead: DeadGroup[];
  /** Groups beyond the ones listed. */
  moreDeadGroups: number;
}

/**
 * Two counts on the `{status, runAt}` index prefix and one aggregation over dead jobs only; the
 * processor never leaves many dead jobs unattended, and the groups are capped.
 */
export async function jobsView(ctx: AppContext): Promise<JobsView> {
  const jobs = ctx.db.collection(COLLECTIONS.jobs);
  const [queued, retrying, groups] = await Promise.all([
    jobs.countDocuments({ status: 'queued' }),
    jobs.countDocuments({ status: 'queued', attempts: { $gt: 0 } }),
    jobs
      .aggregate<{ _id: { w: string; c: string | null }; n: number; name: string | null; org: string | null; message: string | null; lastAt: Date | null }>([
        { $match: { status: 'dead' } },
        { $sort: { finishedAt: 1 } },
        {
          $group: {
            _id: { w: '$workflowId', c: { $ifNull: ['$lastError.code', '$deadReason'] } },
            n: { $sum: 1 },
            name: { $last: '$workflowName' },
            org: { $last: '$organizationId' },
            message: { $last: '$lastError.message' },
            lastAt: { $max: '$finishedAt' },
          },
        },
        { $sort: { n: -1, '_id.w': 1 } },
      ])
      .toArray(),
  ]);
  return {
    queued: { waitingFirstAttempt: queued - retrying, retrying },
    dead: groups.slice(0, DEAD_GROUPS).map((g) => ({
      workflowId: String(g._id.w),
      workflowName: g.name ?? null,
      organizationId: g.org ?? null,
      code: g._id.c ?? 'unknown',
      message: g.message ?? null,
      jobs: g.n,
      lastAt: g.lastAt ?? null,
    })),
    moreDeadGroups: Math.max(0, groups.length - DEAD_GROUPS),
  };
}
