import { BSON, ObjectId, type AnyBulkWriteOperation, type Collection, type Filter, type UpdateFilter } from 'mongodb';
import { z } from 'zod';
import type { AppContext } from '../platform/context.js';
import { BadRequestError } from '../platform/errors.js';
import { idSchema, isoTimeSchema } from '../http/schemas.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { WorkflowDoc, WorkflowStep, ProcessedJobDoc } from '../data/documents.js';
import { jobsCollection } from './claim.js';
import { describeUrl } from './webhook.js';

const MAX_IDS = 1_000;
const SAMPLE = 20;
const BATCH = 500;
/** Errors kept per job across replays. */
const KEEP_ERRORS = 20;

/** What a retry may change besides requeueing: see `RequeueRequestSchema`. */
const options = {
  dryRun: z.boolean().optional(),
  /** Requeue with the workflow's current steps instead of the steps the job was created with. */
  useCurrentWorkflow: z.boolean().optional(),
  /** Also select `succeeded` jobs, to deliver them again on purpose (recorded as a manual redelivery). */
  redeliver: z.boolean().optional(),
};

/**
 * The retry request, the one set of rules for `POST /api/jobs/retry`, `ops retry-dead` and
 * `requeueDeadJobs`: `{ ids }` (job keys or _ids, 1–1000, each 1–200 characters after trimming) or
 * `{ filter: {organizationId?, workflowId?, from?, to?}, all? }`, either with `dryRun`. An empty list
 * or an empty filter never means "all": a filter with no field set is refused unless `all: true` says
 * so explicitly. Time bounds are ISO 8601 times with a zone and apply to the job's `createdAt` (when
 * the trigger happened): `from` inclusive, `to` exclusive, `from` before `to`.
 * `useCurrentWorkflow` replaces each job's step snapshot with its workflow's current `steps`;
 * `redeliver` selects `succeeded` jobs as well as dead ones. `dryRun` writes nothing.
 */
export const RequeueRequestSchema = z
  .strictObject({
    ids: z.array(idSchema).min(1, 'ids must not be empty (to requeue every dead job send filter: {} with all: true)').max(MAX_IDS, `at most ${MAX_IDS} ids per request`).optional(),
    filter: z
      .strictObject({ organizationId: idSchema.optional(), workflowId: idSchema.optional(), from: isoTimeSchema.optional(), to: isoTimeSchema.optional() })
      .optional(),
    all: z.literal(true, { error: 'all must be true when present' }).optional(),
    ...options,
  })
  .superRefine((b, ctx) => {
    if ((b.ids === undefined) === (b.filter === undefined)) ctx.addIssue({ code: 'custom', message: 'send exactly one of ids or filter' });
    if (b.all && b.ids) ctx.addIssue({ code: 'custom', path: ['all'], message: 'all goes with filter, not ids' });
    const f = b.filter;
    if (f && !f.organizationId && !f.workflowId && !f.from && !f.to && !b.all) {
      ctx.addIssue({ code: 'custom', path: ['filter'], message: 'an empty filter would select every dead job; set a field or send all: true' });
    }
    if (f?.from && f.to && Date.parse(f.from) >= Date.parse(f.to)) ctx.addIssue({ code: 'custom', path: ['filter', 'from'], message: 'from must be before to' });
  });
export type RequeueRequest = z.input<typeof RequeueRequestSchema>;

/** One way `useCurrentWorkflow` changes the selected jobs: the jobs of one workflow that had the same old steps. */
export interface StepChange {
  workflowId: string;
  /** Step summaries, e.g. `webhook https://hooks.example.com/path` (no query string, no credentials). */
  from: string[];
  to: string[];
  /** Selected jobs this change applies to. */
  jobs: number;
  /** Up to 5 of their keys. */
  sample: string[];
}

/** A job named in `ids` (or a status a filter found) that was not requeued, and why. */
export interface NotRequeued {
  /** The id or key as given; for a filter, the status that was found instead. */
  id: string;
  /** The job's status, or `not_found`, or `workflow_missing` with `useCurrentWorkflow`. */
  status: string;
  reason: string;
}

export interface RequeueResult {
  dryRun: boolean;
  /** Jobs the request selects (dead, plus succeeded with `redeliver`). */
  matched: number;
  /** Jobs moved back to `queued` (0 on a dry run). */
  requeued: number;
  /** Up to 20 keys of selected jobs. */
  sample: string[];
  /** Of the selected jobs, succeeded ones delivered again (`redeliver`); on a dry run, those that would be. */
  redelivered?: number;
  /** With `useCurrentWorkflow`: how the steps change, grouped per workflow and old steps (at most 20 groups). */
  changes?: StepChange[];
  /** With `useCurrentWorkflow`: selected jobs whose steps are already the workflow's current ones. */
  unchanged?: number;
  /** Why named jobs were not requeued, or (filter) what the filter found instead of dead jobs. */
  notRequeued?: NotRequeued[];
  /** One sentence when nothing was requeued, saying why and what to do. */
  message?: string;
}

type Parsed = z.output<typeof RequeueRequestSchema>;

function selectedStatuses(request: Parsed): ProcessedJobDoc['status'][] {
  return request.redeliver === true ? ['dead', 'succeeded'] : ['dead'];
}

/** The request's jobs whatever their status: the selection without its status condition. */
function scope(request: Parsed): Filter<ProcessedJobDoc> {
  if (request.ids !== undefined) {
    const ids = [...new Set(request.ids)];
    const oids = ids.filter((id) => /^[0-9a-f]{24}$/i.test(id)).map((id) => new ObjectId(id));
    return { $or: [{ key: { $in: ids } }, ...(oids.length ? [{ _id: { $in: oids } }] : [])] };
  }
  // The schema requires exactly one of ids or filter, refuses an empty filter without `all: true`
  // and a `from` that is not before `to`.
  const filter = request.filter!;
  const { organizationId, workflowId } = filter;
  const from = filter.from === undefined ? undefined : new Date(filter.from);
  const to = filter.to === undefined ? undefined : new Date(filter.to);
  const query: Filter<ProcessedJobDoc> = {};
  if (organizationId) query.organizationId = organizationId;
  if (workflowId) query.workflowId = workflowId;
  if (from || to) query.createdAt = { ...(from ? { $gte: from } : {}), ...(to ? { $lt: to } : {}) };
  return query;
}

/** One line per step: its type and, for URLs, origin and path only (query strings and user info carry credentials). */
export function summarizeSteps(steps: readonly WorkflowStep[] | undefined): string[] {
  return (steps ?? []).map((step) => {
    const raw = (step as unknown as { url?: unknown }).url;
    const url = typeof raw === 'string' ? ` ${describeUrl(raw)}` : '';
    return `${String(step.type)}${url}`;
  });
}

function whyNot(status: string, redeliver: boolean): string {
  switch (status) {
    case 'succeeded':
      return redeliver ? 'succeeded' : 'the job succeeded; send "redeliver": true to deliver it again on purpose';
    case 'queued':
      return 'the job is queued and will run when due; nothing to retry';
    case 'running':
      return 'an attempt is running now; retry it only once it is dead';
    case 'failed':
      return 'the job is failed, not dead; only dead jobs are requeued';
    default:
      return `the job is ${status}; only dead jobs are requeued`;
  }
}

/** Explain what the request named or found, when it selected fewer jobs than it named. */
async function explain(jobs: Collection<ProcessedJobDoc>, request: Parsed, selected: Set<string>): Promise<NotRequeued[]> {
  const redeliver = request.redeliver === true;
  if (request.ids !== undefined) {
    // `selected` holds job keys; ids may also be _ids.
    const found = await jobs.find(scope(request), { projection: { _id: 1, key: 1, status: 1 } }).toArray();
    const ids = [...new Set(request.ids)];
    return ids
      .filter((id) => !selected.has(id) && !found.some((j) => (j.key === id || j._id.toHexString() === id) && selected.has(j.key)))
      .map((id) => {
        const job = found.find((j) => j.key === id || j._id.toHexString() === id);
        return job ? { id, status: job.status, reason: whyNot(job.status, redeliver) } : { id, status: 'not_found', reason: 'no job has this key or _id' };
      });
  }
  const statuses = selectedStatuses(request);
  if (selected.size > 0) return [];
  const rows = await jobs
    .aggregate<{ _id: string; n: number }>([{ $match: { ...scope(request), status: { $nin: statuses } } }, { $group: { _id: '$status', n: { $sum: 1 } } }, { $sort: { _id: 1 } }])
    .toArray();
  return rows.map((r) => ({ id: `${r.n} ${r._id}`, status: r._id, reason: whyNot(r._id, redeliver) }));
}

interface Plan {
  /** Current steps per workflow id; null when the workflow no longer exists. */
  steps: Map<string, WorkflowStep[] | null>;
}

async function currentSteps(ctx: AppContext, workflowIds: string[]): Promise<Plan['steps']> {
  const unique = [...new Set(workflowIds)];
  const oids = unique.filter((id) => /^[0-9a-f]{24}$/i.test(id)).map((id) => new ObjectId(id));
  const found = await ctx.db
    .collection<WorkflowDoc>(COLLECTIONS.workflows)
    .find({ _id: { $in: [...unique, ...oids] } }, { projection: { _id: 1, steps: 1 } })
    .toArray();
  const byId = new Map(found.map((w) => [String(w._id), w.steps ?? []]));
  return new Map(unique.map((id) => [id, byId.get(id) ?? null]));
}

const sameSteps = (a: readonly WorkflowStep[] | undefined, b: readonly WorkflowStep[]) => BSON.EJSON.stringify(a ?? []) === BSON.EJSON.stringify(b);

type Selected = Pick<ProcessedJobDoc, '_id' | 'key' | 'status' | 'lastError' | 'workflowId' | 'steps' | 'finishedAt'>;

/**
 * Requeue dead jobs: `queued`, due now, attempts back to 0, last error moved to `previousErrors`.
 * Steps that already succeeded are not repeated — unless `useCurrentWorkflow` gave the job new
 * steps (then it runs them all) or `redeliver` selected a succeeded job (delivered again from the
 * first step, same job key and so the same `Idempotency-Key`, recorded in `history` as a
 * `manual_redelivery`). Each update is guarded on the status it read, so a job requeued by a
 * concurrent request is not requeued twice. Named jobs that were not selected are listed in
 * `notRequeued` with their status; a filter that selected nothing says what it found instead.
 * @throws BadRequestError for a malformed request or an empty filter without `all: true`.
 */
export async function requeueDeadJobs(ctx: AppContext, req: unknown): Promise<RequeueResult> {
  const parsed = RequeueRequestSchema.safeParse(req);
  if (!parsed.success) throw new BadRequestError(`invalid retry request: ${z.prettifyError(parsed.error)}`, parsed.error.issues);
  const request = parsed.data;
  const query: Filter<ProcessedJobDoc> = { ...scope(request), status: { $in: selectedStatuses(request) } };
  const dryRun = request.dryRun === true;
  const useCurrent = request.useCurrentWorkflow === true;
  const jobs = jobsCollection(ctx.db);
  const now = new Date(ctx.clock.now());

  let matched = 0;
  let requeued = 0;
  let redelivered = 0;
  let unchanged = 0;
  const sample: string[] = [];
  const selected = new Set<string>();
  const changes = new Map<string, StepChange>();
  const missing: NotRequeued[] = [];
  const workflows: Plan['steps'] = new Map();
  let batch: AnyBulkWriteOperation<ProcessedJobDoc>[] = [];
  const flush = async () => {
    if (batch.length === 0 || dryRun) return void (batch = []);
    const result = await jobs.bulkWrite(batch, { ordered: false });
    requeued += result.modifiedCount;
    batch = [];
  };

  // _id order: updated jobs leave the selection without moving the cursor's position.
  const projection = { _id: 1, key: 1, status: 1, lastError: 1, workflowId: 1, finishedAt: 1, ...(useCurrent ? { steps: 1 } : {}) };
  const cursor = jobs.find(query, { projection }).sort({ _id: 1 }).batchSize(BATCH);
  let page: Selected[] = [];
  const handle = async (list: Selected[]) => {
    if (useCurrent) {
      const unknown = list.map((j) => j.workflowId).filter((id) => !workflows.has(id));
      if (unknown.length) for (const [id, steps] of await currentSteps(ctx, unknown)) workflows.set(id, steps);
    }
    for (const job of list) {
      let newSteps: WorkflowStep[] | null = null;
      if (useCurrent) {
        const steps = workflows.get(job.workflowId);
        if (!steps) {
          missing.push({ id: job.key, status: 'workflow_missing', reason: `workflow ${job.workflowId} no longer exists; nothing to take the current steps from` });
          continue;
        }
        if (sameSteps(job.steps, steps)) unchanged++;
        else {
          newSteps = steps;
          const from = summarizeSteps(job.steps);
          const group = `${job.workflowId}\n${BSON.EJSON.stringify(job.steps ?? [])}`;
          const change = changes.get(group) ?? { workflowId: job.workflowId, from, to: summarizeSteps(steps), jobs: 0, sample: [] };
          change.jobs++;
          if (change.sample.length < 5) change.sample.push(job.key);
          if (changes.size < SAMPLE || changes.has(group)) changes.set(group, change);
        }
      }
      matched++;
      selected.add(job.key);
      if (sample.length < SAMPLE) sample.push(job.key);
      const redelivery = job.status === 'succeeded';
      if (redelivery) redelivered++;
      batch.push({ updateOne: { filter: { _id: job._id, status: job.status }, update: requeueUpdate(job, now, newSteps, redelivery) } });
      if (batch.length >= BATCH) await flush();
    }
  };
  for await (const job of cursor) {
    page.push(job as Selected);
    if (page.length >= BATCH) {
      await handle(page);
      page = [];
    }
  }
  await handle(page);
  await flush();

  const result: RequeueResult = { dryRun, matched, requeued, sample };
  if (request.redeliver) result.redelivered = redelivered;
  if (useCurrent) Object.assign(result, { changes: [...changes.values()], unchanged });
  // Jobs already accounted for (selected, or listed as missing their workflow) are not explained again.
  const handled = new Set([...selected, ...missing.map((m) => m.id)]);
  const notRequeued = [...missing, ...((request.ids !== undefined && handled.size < request.ids.length) || matched === 0 ? await explain(jobs, request, handled) : [])];
  if (notRequeued.length) result.notRequeued = notRequeued;
  if (matched === 0) result.message = nothingMessage(request, notRequeued);
  if (!dryRun) ctx.log.info('jobs requeued', { matched, requeued, redelivered, useCurrentWorkflow: useCurrent });
  return result;
}

function requeueUpdate(job: Selected, now: Date, newSteps: WorkflowStep[] | null, redelivery: boolean) {
  const event = redelivery
    ? { kind: 'manual_redelivery', at: now, previousStatus: job.status, previousFinishedAt: job.finishedAt ?? null }
    : { kind: 'replay', at: now, previousStatus: job.status, ...(newSteps ? { stepsReplaced: true } : {}) };
  return {
    $set: {
      status: 'queued' as const,
      runAt: now,
      attempts: 0,
      lease: null,
      lastError: null,
      finishedAt: null,
      replayedAt: now,
      updatedAt: now,
      // New steps, or a deliberate second delivery: run every step from the first.
      ...(newSteps || redelivery ? { completedSteps: 0 } : {}),
      ...(newSteps ? { steps: newSteps } : {}),
    },
    $unset: { deadReason: '' as const },
    $inc: redelivery ? { redeliveries: 1 } : { replays: 1 },
    $push: {
      history: { $each: [event], $slice: -KEEP_ERRORS },
      ...(job.lastError ? { previousErrors: { $each: [job.lastError], $slice: -KEEP_ERRORS } } : {}),
    },
  } as UpdateFilter<ProcessedJobDoc>;
}

function nothingMessage(request: Parsed, why: NotRequeued[]): string {
  const what = request.redeliver ? 'no dead or succeeded job' : 'no dead job';
  if (why.length === 0) return `${what} matches the request`;
  if (request.ids !== undefined) return `${what} among the ids given: ${why.slice(0, 3).map((w) => `${w.id} (${w.status}: ${w.reason})`).join('; ')}`;
  return `${what} matches the filter; it matches ${why.map((w) => w.id).join(', ')} (${why[0]!.reason})`;
}
