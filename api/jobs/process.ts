import { z } from 'zod';
import { BadRequestError } from '../../lib/platform/errors.js';
import { getConfig, getContext } from '../../lib/platform/context.js';
import { processJobsAndContinue } from '../../lib/fanout/continuation.js';
import { json, route } from '../../lib/http/route.js';
import { readRawBody } from '../../lib/http/body.js';
import { requireBearer, requireQStashOrCron } from '../../lib/http/auth.js';

/**
 * The POST body: `{}` for a lead run (cron bearer, continuation `{ continuationOf }`, a kick), or
 * `{ lane, wave }` for a parallel run a lead published (lib/jobs/scale.ts). Other fields are ignored.
 */
export const ProcessBody = z.looseObject({
  lane: z.number({ error: 'lane must be a number' }).int().min(1).max(63, 'lane must be between 1 and 63 (JOB_PARALLELISM − 1)').optional(),
});

function parseBody(raw: string): z.output<typeof ProcessBody> {
  if (raw.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new BadRequestError('body must be JSON: {} for a run, {"lane": n} for a parallel run');
  }
  const parsed = ProcessBody.safeParse(value);
  if (!parsed.success) throw new BadRequestError(`invalid body: ${z.prettifyError(parsed.error)}`, parsed.error.issues);
  return parsed.data;
}

/**
 * `GET /api/jobs/process` — Vercel Cron (cron bearer): run due jobs until the deadline.
 * `POST` — signed by QStash (a continuation, a parallel lane, a kick), or the cron bearer. The
 * body is verified first, then read for `lane`.
 */
export const { GET, POST, PUT, PATCH, DELETE } = route({
  GET: async (request) => {
    requireBearer(request, getConfig().CRON_SECRET, 'CRON_SECRET');
    return json(200, await processJobsAndContinue(await getContext()));
  },
  POST: async (request) => {
    const raw = await readRawBody(request);
    await requireQStashOrCron(request, raw, getConfig(), '/api/jobs/process');
    const body = parseBody(raw);
    return json(200, await processJobsAndContinue(await getContext(), body.lane === undefined ? {} : { lane: body.lane }));
  },
});
