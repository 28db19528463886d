import type { Db, Filter } from 'mongodb';
import { jobsCollection } from './claim.js';
import type { ProcessedJobDoc } from '../data/documents.js';

/**
 * Ordering rule of the job processor: the jobs of one workflow for one submission run in the
 * order of their events. A job is not claimed while an earlier job of the same `workflowId` and
 * `submissionId` is still `queued` (due or backing off) or `running`. Jobs of different submissions,
 * and of different workflows, run in parallel, in any order.
 *
 * - "Earlier" is change-stream order: `eventClusterTime` when both jobs carry one, else `createdAt`,
 *   else `_id`.
 * - An `insert` job never waits: an insert is the first event of its submission, and a job key
 *   (`{workflowId}:{submissionId}:insert`) is created once, so no earlier job of its submission
 *   exists. This is what keeps the check free for the common case (no extra round trip).
 * - A `dead` job no longer holds the ones after it (otherwise one dead letter would stop its
 *   submission's later events until an operator acts); replaying it runs it after them.
 */
export type OrderKey = Pick<ProcessedJobDoc, '_id' | 'workflowId' | 'submissionId' | 'event' | 'eventClusterTime' | 'createdAt'>;

/** True when `a` happened before `b` (see the ordering rule). */
export function precedes(a: OrderKey, b: OrderKey): boolean {
  if (a.eventClusterTime && b.eventClusterTime) {
    const c = a.eventClusterTime.compare(b.eventClusterTime);
    if (c !== 0) return c < 0;
  }
  const at = a.createdAt?.getTime() ?? 0;
  const bt = b.createdAt?.getTime() ?? 0;
  if (at !== bt) return at < bt;
  return a._id.toHexString() < b._id.toHexString();
}

const groupOf = (j: Pick<OrderKey, 'workflowId' | 'submissionId'>) => `${j.workflowId}\u0000${j.submissionId}`;

/**
 * Of `candidates` (due jobs about to be claimed), the `_id`s (hex) that must wait for an earlier
 * unfinished job of their workflow and submission. One `find` when some candidate is not an
 * insert, none otherwise (`roundTrips` says which).
 */
export async function blockedByOrder(db: Db, candidates: readonly OrderKey[]): Promise<{ blocked: Set<string>; roundTrips: number }> {
  const blocked = new Set<string>();
  const later = candidates.filter((j) => j.event !== 'insert');
  if (later.length === 0) return { blocked, roundTrips: 0 };
  const groups = new Map<string, Pick<OrderKey, 'workflowId' | 'submissionId'>>();
  for (const j of later) groups.set(groupOf(j), { workflowId: j.workflowId, submissionId: j.submissionId });
  const filter: Filter<ProcessedJobDoc> = {
    $or: [...groups.values()].map((g) => ({ workflowId: g.workflowId, submissionId: g.submissionId })),
    status: { $in: ['queued', 'running'] },
  };
  const open = await jobsCollection(db)
    .find(filter, { projection: { _id: 1, workflowId: 1, submissionId: 1, event: 1, eventClusterTime: 1, createdAt: 1 } })
    .toArray();
  const byGroup = new Map<string, OrderKey[]>();
  for (const j of open) {
    const list = byGroup.get(groupOf(j)) ?? [];
    list.push(j);
    byGroup.set(groupOf(j), list);
  }
  for (const j of later) {
    const id = j._id.toHexString();
    if ((byGroup.get(groupOf(j)) ?? []).some((o) => o._id.toHexString() !== id && precedes(o, j))) blocked.add(id);
  }
  return { blocked, roundTrips: 1 };
}
