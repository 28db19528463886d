import { ObjectId, type AnyBulkWriteOperation, type Filter } from 'mongodb';
import { z } from 'zod';
import type { AppContext } from '../platform/context.js';
import { BadRequestError } from '../platform/errors.js';
import { jobsCollection } from './claim.js';
import type { ProcessedJobDoc } from './types.js';

const MAX_IDS = 1_000;
const SAMPLE = 20;
const BATCH = 500;
/** Errors kept per job across replays. */
const KEEP_ERRORS = 20;

const date = z.coerce.date({ error: 'must be an ISO date' });

/**
 * `{ ids }` (job keys or _ids, non-empty) or `{ filter, all? }`. A filter with no field set means
 * every dead job and is refused unless `all: true` says so explicitly. `dryRun` writes nothing.
 * Time bounds apply to the job's `createdAt` (when the trigger happened): `from` inclusive, `to` exclusive.
 */
export const RequeueRequestSchema = z.union([
  z.strictObject({
    ids: z.array(z.string().min(1)).min(1, 'ids must not be empty').max(MAX_IDS, `at most ${MAX_IDS} ids per request`),
    dryRun: z.boolean().optional(),
  }),
  z.strictObject({
    filter: z.strictObject({
      organizationId: z.string().min(1).optional(),
      workflowId: z.string().min(1).optional(),
      from: date.optional(),
      to: date.optional(),
    }),
    all: z.boolean().optional(),
    dryRun: z.boolean().optional(),
  }),
]);
export type RequeueRequest = z.input<typeof RequeueRequestSchema>;

export interface RequeueResult {
  dryRun: boolean;
  /** Dead jobs the request selects. */
  matched: number;
  /** Jobs moved back to `queued` (0 on a dry run). */
  requeued: number;
  /** Up to 20 keys of selected jobs. */
  sample: string[];
}

function selection(request: z.output<typeof RequeueRequestSchema>): Filter<ProcessedJobDoc> {
  if ('ids' in request) {
    const ids = [...new Set(request.ids)];
    const oids = ids.filter((id) => /^[0-9a-f]{24}$/i.test(id)).map((id) => new ObjectId(id));
    return { status: 'dead', $or: [{ key: { $in: ids } }, ...(oids.length ? [{ _id: { $in: oids } }] : [])] };
  }
  const { organizationId, workflowId, from, to } = request.filter;
  if (!organizationId && !workflowId && !from && !to && request.all !== true) {
    throw new BadRequestError('an empty filter would select every dead job; set a filter field or pass "all": true');
  }
  if (from && to && from >= to) throw new BadRequestError('filter.from must be before filter.to');
  const query: Filter<ProcessedJobDoc> = { status: 'dead' };
  if (organizationId) query.organizationId = organizationId;
  if (workflowId) query.workflowId = workflowId;
  if (from || to) query.createdAt = { ...(from ? { $gte: from } : {}), ...(to ? { $lt: to } : {}) };
  return query;
}

/**
 * Requeue dead jobs: `queued`, due now, attempts back to 0, last error moved to `previousErrors`.
 * Steps that already succeeded are not repeated. Each update is guarded on `status: 'dead'`, so a
 * job requeued by a concurrent request is not requeued twice.
 */
export async function requeueDeadJobs(ctx: AppContext, req: unknown): Promise<RequeueResult> {
  const parsed = RequeueRequestSchema.safeParse(req);
  if (!parsed.success) throw new BadRequestError(`invalid retry request: ${z.prettifyError(parsed.error)}`, parsed.error.issues);
  const query = selection(parsed.data);
  const dryRun = parsed.data.dryRun === true;
  const jobs = jobsCollection(ctx.db);

  if (dryRun) {
    const [matched, sample] = await Promise.all([
      jobs.countDocuments(query),
      jobs.find(query, { projection: { key: 1 } }).sort({ _id: 1 }).limit(SAMPLE).toArray(),
    ]);
    return { dryRun, matched, requeued: 0, sample: sample.map((j) => j.key) };
  }

  const now = new Date(ctx.clock.now());
  let matched = 0;
  let requeued = 0;
  const sample: string[] = [];
  let batch: AnyBulkWriteOperation<ProcessedJobDoc>[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const result = await jobs.bulkWrite(batch, { ordered: false });
    requeued += result.modifiedCount;
    batch = [];
  };
  // _id order: updated jobs leave the selection without moving the cursor's position.
  const cursor = jobs.find(query, { projection: { _id: 1, key: 1, lastError: 1 } }).sort({ _id: 1 }).batchSize(BATCH);
  for await (const job of cursor) {
    matched++;
    if (sample.length < SAMPLE) sample.push(job.key);
    batch.push({
      updateOne: {
        filter: { _id: job._id, status: 'dead' },
        update: {
          $set: { status: 'queued', runAt: now, attempts: 0, lease: null, lastError: null, finishedAt: null, replayedAt: now, updatedAt: now },
          $unset: { deadReason: '' },
          $inc: { replays: 1 },
          ...(job.lastError ? { $push: { previousErrors: { $each: [job.lastError], $slice: -KEEP_ERRORS } } } : {}),
        },
      },
    });
    if (batch.length >= BATCH) await flush();
  }
  await flush();
  ctx.log.info('dead jobs requeued', { matched, requeued });
  return { dryRun, matched, requeued, sample };
}
