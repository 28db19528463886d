import { z } from 'zod';
import { idSchema as id, isoTimeSchema as time } from '../../lib/http/schemas.js';
import { getConfig, getContext } from '../../lib/platform/context.js';
import { json, route } from '../../lib/http/route.js';
import { readJson } from '../../lib/http/body.js';
import { requireAdmin } from '../../lib/http/auth.js';
import { requeueDeadJobs } from '../../lib/jobs/requeue.js';


/**
 * `{ids: [...]}` (job keys or ids) or `{filter: {organizationId?, workflowId?, from?, to?}, all?: true}`,
 * either with `dryRun`. An empty list or an empty filter never means "all": that needs `all: true`.
 * `useCurrentWorkflow: true` requeues with the workflow's current steps (the dry run lists the
 * changes); `redeliver: true` also selects succeeded jobs, to deliver them again on purpose.
 */
export const RetryBody = z
  .strictObject({
    ids: z.array(id).min(1, 'ids must not be empty (to requeue every dead job send filter: {} with all: true)').max(1000, 'at most 1000 ids per request').optional(),
    filter: z.strictObject({ organizationId: id.optional(), workflowId: id.optional(), from: time.optional(), to: time.optional() }).optional(),
    all: z.literal(true, { error: 'all must be true when present' }).optional(),
    dryRun: z.boolean().optional(),
    useCurrentWorkflow: z.boolean().optional(),
    redeliver: z.boolean().optional(),
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

/**
 * `POST /api/jobs/retry` — admin token. Requeue dead jobs by id or filter; `dryRun` writes nothing.
 * Answers 200 `RequeueResult`; when nothing was requeued, `message` and `notRequeued` say why (each
 * named job's status), rather than a bare `matched: 0`.
 */
export const { GET, POST, PUT, PATCH, DELETE } = route({
  POST: async (request) => {
    requireAdmin(request, getConfig());
    const body = await readJson(request, RetryBody);
    return json(200, await requeueDeadJobs(await getContext(), body));
  },
});
