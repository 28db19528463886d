import { getConfig, getContext } from '../../lib/context.js';
import { fanOut } from '../../lib/fanout.js';
import { json, requireBearer, route } from '../../lib/http.js';

/** `GET /api/cron/fanout` — Vercel Cron, every minute: one drain per stream through QStash (or in-process). */
export const { GET, POST, PUT, PATCH, DELETE } = route({
  GET: async (request) => {
    requireBearer(request, getConfig().CRON_SECRET, 'CRON_SECRET');
    return json(200, await fanOut(await getContext()));
  },
});
