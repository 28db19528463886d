import { getConfig, getContext } from '../../lib/platform/context.js';
import { json, route } from '../../lib/http/route.js';
import { readJson } from '../../lib/http/body.js';
import { requireAdmin } from '../../lib/http/auth.js';
import { RequeueRequestSchema, requeueDeadJobs } from '../../lib/jobs/requeue.js';

/**
 * `POST /api/jobs/retry` — admin token. Requeue dead jobs by id or filter; `dryRun` writes nothing.
 * The body's rules are `RequeueRequestSchema` (lib/jobs/requeue.ts); a body that breaks them is a 400 naming each problem.
 * Answers 200 `RequeueResult`; when nothing was requeued, `message` and `notRequeued` say why (each
 * named job's status), rather than a bare `matched: 0`.
 */
export const { GET, POST, PUT, PATCH, DELETE } = route({
  POST: async (request) => {
    requireAdmin(request, getConfig());
    const body = await readJson(request, RequeueRequestSchema);
    return json(200, await requeueDeadJobs(await getContext(), body));
  },
});
