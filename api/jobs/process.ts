import { getConfig, getContext } from '../../lib/platform/context.js';
import { processJobsAndContinue } from '../../lib/fanout/continuation.js';
import { json, route } from '../../lib/http/route.js';
import { readRawBody } from '../../lib/http/body.js';
import { requireBearer, requireQStashOrCron } from '../../lib/http/auth.js';

/**
 * `GET /api/jobs/process` — Vercel Cron (cron bearer): run due jobs until the deadline.
 * `POST` — the continuation QStash publishes when due jobs remain (signed), or the cron bearer.
 * The body carries nothing the run needs, so it is verified but not parsed.
 */
export const { GET, POST, PUT, PATCH, DELETE } = route({
  GET: async (request) => {
    requireBearer(request, getConfig().CRON_SECRET, 'CRON_SECRET');
    return json(200, await processJobsAndContinue(await getContext()));
  },
  POST: async (request) => {
    const raw = await readRawBody(request);
    await requireQStashOrCron(request, raw, getConfig(), '/api/jobs/process');
    return json(200, await processJobsAndContinue(await getContext()));
  },
});
