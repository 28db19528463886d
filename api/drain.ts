import { z } from 'zod';
import { idSchema as id } from '../lib/http/schemas.js';
import { currentLogger, getConfig, getContext } from '../lib/platform/context.js';
import { drainOne } from '../lib/drain/one.js';
import { errorResponse, json, route } from '../lib/http/route.js';
import { nonRetryableForQStash } from '../lib/qstash/receiver.js';
import { parseJsonText, readRawBody, requireJsonContentType } from '../lib/http/body.js';
import { requireQStashOrCron } from '../lib/http/auth.js';


/**
 * `{orgId}` or `{streamId}`; continuations also carry the run they continue, relay windows their
 * chain generation (`{streamId, generation}`, lib/fanout/relay.ts). A partition's recovery run is
 * `{streamId: 'recovery:partition:{p}/{P}'}` (lib/drain/recovery-run.ts), without a generation.
 */
export const DrainBody = z
  .strictObject({
    orgId: id.optional(),
    streamId: id.optional(),
    continuationOf: id.optional(),
    generation: z.int('must be an integer').min(1, 'must be at least 1').max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .refine((b) => (b.orgId === undefined) !== (b.streamId === undefined), 'send exactly one of orgId or streamId')
  .refine((b) => b.generation === undefined || b.streamId !== undefined, 'a relay generation goes with streamId, not orgId');

/**
 * `POST /api/drain` — QStash-signed (raw body, URL from PUBLIC_BASE_URL) or the cron bearer.
 * The status is a redelivery decision for QStash: 2xx done (also when the run recorded a failure it
 * handled), 5xx try again, 489 never again (the request itself is wrong).
 */
export const { GET, POST, PUT, PATCH, DELETE } = route({
  POST: async (request) => {
    const raw = await readRawBody(request);
    const via = await requireQStashOrCron(request, raw, getConfig(), '/api/drain');
    try {
      requireJsonContentType(request);
      const body = parseJsonText(raw, DrainBody);
      const target = body.orgId !== undefined ? { orgId: body.orgId } : { streamId: body.streamId! };
      const startedBy = via === 'cron' ? 'cron' : body.continuationOf ? 'continuation' : 'qstash';
      return json(200, await drainOne(await getContext(), target, startedBy, body.generation));
    } catch (error) {
      if (via !== 'qstash') throw error;
      return nonRetryableForQStash(errorResponse(error, await currentLogger()));
    }
  },
});
