import { z } from 'zod';
import { idSchema as id, isoTimeSchema } from '../lib/http/schemas.js';
import { Deadline } from '../lib/platform/clock.js';
import { getConfig, getContext } from '../lib/platform/context.js';
import { drainAll } from '../lib/fanout/drains.js';
import { drainOne } from '../lib/drain/one.js';
import { json, route } from '../lib/http/route.js';
import { readJson } from '../lib/http/body.js';
import { requireAdmin } from '../lib/http/auth.js';
import { maxWindowMs } from '../lib/platform/limits.js';
import { reconcileSince } from '../lib/drain/reconcile.js';
import { resolveStream } from '../lib/streams/refs.js';
import { MAX_SUBMISSION_ID, redispatchSubmission } from '../lib/dispatch/explicit.js';
import { restartStream } from '../lib/drain/restart.js';

/** A job's `submissionId` as given (lib/data/submission-id.ts); not trimmed: a string `_id` may have spaces. */
const submissionId = z.string().min(1, 'must not be empty').max(MAX_SUBMISSION_ID, `at most ${MAX_SUBMISSION_ID} characters`);

/**
 * One of: `{orgId}` or `{streamId}` (drain now), `{all: true}` (drain every stream), `{orgId,
 * reconcileSince: ISO}` (scan and dispatch since a time), `{orgId, submissionId}` (dispatch one
 * submission again), `{action: 'restart', streamId, at: ISO | 'now'}` (drop the token, open the stream at
 * that time, scan the skipped window). "All" is only ever the explicit flag; anything else is a 400 that says why.
 */
export const TriggerBody = z
  .strictObject({
    orgId: id.optional(),
    streamId: id.optional(),
    all: z.literal(true, { error: 'all must be true when present (it is how "every stream" is asked for)' }).optional(),
    reconcileSince: isoTimeSchema.optional(),
    submissionId: submissionId.optional(),
    /** `restart`: drop the stream's token and open it at `at` (lib/drain/restart.ts). */
    action: z.literal('restart', { error: 'action must be "restart" when present' }).optional(),
    at: z
      .union([z.literal('now'), z.iso.datetime({ offset: true, error: 'at must be "now" or an ISO 8601 time with a zone, e.g. 2025-01-31T12:00:00Z' })])
      .optional(),
    /** With reconcileSince: also apply workflows created (or activated) after a submission was saved. */
    includeLaterWorkflows: z.boolean().optional(),
  })
  .superRefine((b, ctx) => {
    const targets = [b.orgId, b.streamId, b.all].filter((v) => v !== undefined).length;
    if (targets !== 1) ctx.addIssue({ code: 'custom', message: 'send exactly one of orgId, streamId or all: true' });
    if (b.reconcileSince !== undefined && b.submissionId !== undefined) ctx.addIssue({ code: 'custom', message: 'reconcileSince and submissionId cannot be combined' });
    if (b.submissionId !== undefined && b.orgId === undefined) ctx.addIssue({ code: 'custom', path: ['submissionId'], message: 'submissionId needs orgId' });
    if (b.includeLaterWorkflows !== undefined && b.reconcileSince === undefined) ctx.addIssue({ code: 'custom', path: ['includeLaterWorkflows'], message: 'includeLaterWorkflows goes with reconcileSince' });
    if (b.reconcileSince !== undefined && b.all) ctx.addIssue({ code: 'custom', path: ['reconcileSince'], message: 'reconcileSince needs orgId or streamId, not all' });
    if (b.action === 'restart' && (b.streamId === undefined || b.at === undefined)) ctx.addIssue({ code: 'custom', path: ['action'], message: 'restart needs streamId and at ("now" or an ISO time)' });
    if (b.action === 'restart' && (b.reconcileSince !== undefined || b.submissionId !== undefined)) ctx.addIssue({ code: 'custom', path: ['action'], message: 'restart cannot be combined with reconcileSince or submissionId' });
    if (b.at !== undefined && b.action !== 'restart') ctx.addIssue({ code: 'custom', path: ['at'], message: 'at is only for action: "restart"' });
  });

/** `POST /api/trigger` — admin token. Drain now, reconcile since a time, or re-dispatch one submission. */
export const { GET, POST, PUT, PATCH, DELETE } = route({
  POST: async (request) => {
    requireAdmin(request, getConfig());
    const body = await readJson(request, TriggerBody);
    const ctx = await getContext();
    const window = maxWindowMs('operator');
    const target = body.orgId !== undefined ? { orgId: body.orgId } : { streamId: body.streamId! };
    if (body.action === 'restart') return json(200, { restart: await restartStream(ctx, body.streamId!, body.at === 'now' ? 'now' : new Date(body.at!)) });
    if (body.submissionId !== undefined) return json(200, { redispatch: await redispatchSubmission(ctx, body.orgId!, body.submissionId) });
    if (body.reconcileSince !== undefined) {
      const stream = await resolveStream(ctx, target);
      return json(200, { reconcile: await reconcileSince(ctx, stream, new Date(body.reconcileSince), Deadline.after(ctx.clock, window), 'manual', { includeLaterWorkflows: body.includeLaterWorkflows }) });
    }
    if (body.all) return json(200, await drainAll(ctx, window, 'manual'));
    const { run, continuation } = await drainOne(ctx, target, 'manual');
    return json(200, { runs: [run], notReached: [], continuation });
  },
});
