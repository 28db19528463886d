import { getConfig, getContext } from '../../lib/platform/context.js';
import { fanOut } from '../../lib/fanout/tick.js';
import { json, route } from '../../lib/http/route.js';
import { requireBearer } from '../../lib/http/auth.js';

/** `GET /api/cron/fanout` — Vercel Cron, every minute: one drain per stream through QStash (or in-process). */
export const { GET, POST, PUT, PATCH, DELETE } = route({
  GET: async (request) => {
    requireBearer(request, getConfig().CRON_SECRET, 'CRON_SECRET');
    return json(200, await fanOut(await getContext()));
  },
});
