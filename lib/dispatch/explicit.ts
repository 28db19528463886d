import type { Collection, Document } from 'mongodb';
import { SubmissionIdError, encodeSubmissionId, submissionIdCandidates } from '../data/submission-id.js';
import type { AppContext } from '../platform/context.js';
import { rolloutModeFor } from '../streams/rollout.js';
import { type RolloutMode } from '../platform/config.js';
import { LEGACY_SHARED_COLLECTIONS } from '../data/mongo.js';
import { loadWorkflows } from './workflows.js';
import { registryForScan, savedAtOf } from './timeline.js';
import { planJobs } from './plan.js';
import { writeDeadLetters, writeJobs } from './write.js';
import { assertOrgId, knownOrganizations, orgStream, sharedStream, streamCollection, streamOfOrg } from '../streams/refs.js';
import { BadRequestError, NotFoundError } from '../platform/errors.js';
import type { StreamRef } from '../streams/refs.js';
import type { SubmissionDoc, JobOrigin } from '../data/documents.js';

export interface ExplicitResult {
  mode: RolloutMode;
  /** False in `change_streams` mode: the stream owns this organization's triggers. */
  dispatched: boolean;
  jobsCreated: number;
  duplicates: number;
}

/**
 * The entry point the application's submission handler calls after saving a submission (today's
 * behaviour, kept for rollout and rollback). In `explicit` and `dual` mode it queues the jobs with
 * the same keys the change stream computes, so dual mode never duplicates; in `change_streams` mode
 * it does nothing. Throws on database errors: the caller decides whether to fail the request.
 */
export async function dispatchExplicit(
  ctx: AppContext,
  submission: SubmissionDoc,
  opts: { collection?: string } = {},
): Promise<ExplicitResult> {
  if (!submission || typeof submission.organizationId !== 'string' || !submission.organizationId) {
    throw new BadRequestError('submission.organizationId is required');
  }
  const mode = rolloutModeFor(ctx.config, submission.organizationId);
  if (mode === 'change_streams') return { mode, dispatched: false, jobsCreated: 0, duplicates: 0 };
  const shared = opts.collection && (LEGACY_SHARED_COLLECTIONS as readonly string[]).includes(opts.collection);
  const stream = shared ? sharedStream(opts.collection!) : orgStream(submission.organizationId);
  const result = await dispatchDocument(ctx, stream, submission, 'explicit');
  return { mode, dispatched: true, ...result };
}

/** Dispatch one stored submission through a path (idempotent: existing jobs only record the path). */
async function dispatchDocument(ctx: AppContext, stream: StreamRef, doc: Document, path: JobOrigin) {
  const now = new Date(ctx.clock.now());
  const orgId = stream.orgId ?? (doc.organizationId as string);
  // The explicit path judges at now; a manual re-dispatch of a stored submission at when it was saved.
  const manual = path === 'manual';
  const registry = manual ? await registryForScan(ctx.db, orgId, {}, ctx.log) : await loadWorkflows(ctx.db, orgId, ctx.log);
  const input = { operationType: 'insert' as const, document: doc, eventId: null, clusterTime: null, wallTime: null, savedAt: manual ? savedAtOf(doc) : null };
  const plan = planJobs([input], registry, {
    source: stream.id,
    path,
    now,
    orgId: stream.kind === 'shared' ? null : stream.orgId,
  });
  const written = await writeJobs(ctx.db, plan.jobs, path);
  const deadLettered = await writeDeadLetters(ctx.db, stream.id, orgId, plan.poison, now);
  return { jobsCreated: written.created, duplicates: written.duplicates, deadLettered };
}

/** Longest submissionId accepted for a look-up (an encoded compound `_id` can be long). */
export const MAX_SUBMISSION_ID = 4096;

async function findIn(coll: Collection, submissionId: string, orgId: string | null): Promise<Document | null> {
  const filter: Document = { _id: { $in: submissionIdCandidates(submissionId) } };
  if (orgId) filter.organizationId = orgId;
  return coll.findOne(filter);
}

/**
 * Operator action: dispatch one submission again through the `manual` path. Looks in the
 * organization's source, then the legacy shared collections. Jobs that exist are not duplicated.
 * `submissionId` is the text form of the `_id` (lib/data/submission-id.ts: a job's `submissionId`, or
 * a plain string id as typed); the answer carries the submission's canonical `submissionId`.
 */
export async function redispatchSubmission(ctx: AppContext, orgId: string, submissionId: string) {
  assertOrgId(orgId);
  if (!submissionId || submissionId.length > MAX_SUBMISSION_ID) throw new BadRequestError(`submissionId must be a non-empty string of at most ${MAX_SUBMISSION_ID} characters`);
  try {
    submissionIdCandidates(submissionId);
  } catch (error) {
    if (error instanceof SubmissionIdError) throw new BadRequestError(error.message);
    throw error;
  }
  if (!(await knownOrganizations(ctx)).includes(orgId)) throw new NotFoundError(`unknown organization "${orgId}"`);
  const own = await streamOfOrg(ctx, orgId);
  const candidates: [StreamRef, string | null][] = [[own, null], ...LEGACY_SHARED_COLLECTIONS.map((c): [StreamRef, string] => [sharedStream(c), orgId])];
  for (const [stream, orgFilter] of candidates) {
    const doc = await findIn(await streamCollection(ctx, stream), submissionId, orgFilter);
    if (doc) return { submissionId: encodeSubmissionId(doc._id), streamId: stream.id, ...(await dispatchDocument(ctx, stream, doc, 'manual')) };
  }
  throw new NotFoundError(`submission "${submissionId}" not found for organization "${orgId}"`);
}
