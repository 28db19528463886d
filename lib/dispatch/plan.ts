import { BSON } from 'mongodb';
import { encodeSubmissionId } from '../data/submission-id.js';
import type { Workflows } from './workflows.js';
import type { JobDoc, SubmissionEvent, JobOrigin } from '../data/documents.js';
import { DispatchInput } from './events.js';

export interface PoisonEvent {
  input: DispatchInput;
  code: 'document_unavailable' | 'malformed_submission' | 'oversized' | 'filter_failed';
  reason: string;
}

export interface DispatchPlan {
  jobs: JobDoc[];
  poison: PoisonEvent[];
  /** Events whose organization is handled by the explicit path only. */
  skipped: number;
}

export interface PlanOptions {
  source: string;
  path: JobOrigin;
  now: Date;
  /** Organization of the stream; null for shared collections (taken from each document). */
  orgId: string | null;
  /** Whether this path may dispatch for an organization (rollout modes). Default: always. */
  orgAllowed?: (orgId: string) => boolean;
}

/** Submissions larger than this cannot be snapshotted into a job (MongoDB's limit is 16 MiB). */
export const MAX_SUBMISSION_BYTES = 15 * 1024 * 1024;

/**
 * The job key. Inserts: `{workflowId}:{submissionId}:insert` — the explicit path computes the same,
 * with `submissionId` from `encodeSubmissionId` (lib/data/submission-id.ts) on every path,
 * which is what makes dual mode free of duplicates. Updates/replaces add the event's identity.
 */
export function jobKey(workflowId: string, submissionId: string, event: SubmissionEvent, eventId?: string | null): string {
  if (event === 'insert') return `${workflowId}:${submissionId}:insert`;
  return `${workflowId}:${submissionId}:${event}:${eventId ?? 'unknown'}`;
}

function nonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

/** Turn inputs into jobs (pure). Anything that can never become a job is returned as poison. */
export function planJobs(inputs: readonly DispatchInput[], registry: Workflows, opts: PlanOptions): DispatchPlan {
  const plan: DispatchPlan = { jobs: [], poison: [], skipped: 0 };
  for (const input of inputs) {
    const doc = input.document;
    if (!doc || typeof doc !== 'object') {
      plan.poison.push({ input, code: 'document_unavailable', reason: `${input.operationType} event without a document (deleted before lookup?)` });
      continue;
    }
    // The stream's organization, or the one the event's namespace names (partition streams), else the document's.
    const orgId = (input.orgId !== undefined ? input.orgId : opts.orgId) ?? doc.organizationId;
    const { formId, _id } = doc;
    if (!nonEmptyString(orgId) || !nonEmptyString(formId) || _id === undefined || _id === null) {
      const missing = [!nonEmptyString(orgId) && 'organizationId', !nonEmptyString(formId) && 'formId', (_id ?? null) === null && '_id']
        .filter(Boolean)
        .join(', ');
      plan.poison.push({ input, code: 'malformed_submission', reason: `submission lacks ${missing}` });
      continue;
    }
    if (opts.orgAllowed && !opts.orgAllowed(orgId)) {
      plan.skipped++;
      continue;
    }
    const at = input.savedAt;
    const candidates = registry
      .forForm(orgId, formId)
      .filter((wf) => wf.on.has(input.operationType) && (!at || !wf.inForceAt || wf.inForceAt(at)));
    if (candidates.length === 0) continue;
    if (BSON.calculateObjectSize(doc) > MAX_SUBMISSION_BYTES) {
      plan.poison.push({ input, code: 'oversized', reason: `submission is larger than ${MAX_SUBMISSION_BYTES} bytes` });
      continue;
    }
    const submissionId = encodeSubmissionId(_id);
    for (const wf of candidates) {
      let matched: boolean;
      try {
        matched = wf.matches(doc);
      } catch (error) {
        plan.poison.push({ input, code: 'filter_failed', reason: `workflow ${wf.id} filter failed: ${(error as Error).message}` });
        continue;
      }
      if (!matched) continue;
      plan.jobs.push({
        key: jobKey(wf.id, submissionId, input.operationType, input.eventId),
        organizationId: orgId,
        workflowId: wf.id,
        workflowName: wf.name,
        formId,
        submissionId,
        source: opts.source,
        event: input.operationType,
        createdBy: opts.path,
        seenBy: [opts.path],
        status: 'queued',
        attempts: 0,
        runAt: opts.now,
        lease: null,
        lastError: null,
        steps: wf.steps,
        submission: doc,
        eventClusterTime: input.clusterTime,
        eventWallTime: input.wallTime,
        ...(input.judgedOn ? { judgedOn: input.judgedOn } : {}),
        createdAt: opts.now,
        updatedAt: opts.now,
      });
    }
  }
  return plan;
}
