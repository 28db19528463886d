import { getConfig, getContext } from '../lib/platform/context.js';
import { requireAdmin } from '../lib/http/auth.js';
import { route } from '../lib/http/route.js';
import { readStatus } from '../lib/status/report.js';
import { renderStatus, statusFormat } from '../lib/status/render.js';

/**
 * `GET /api/status` — admin token (Bearer, or as the Basic password from a browser).
 * JSON by default, the dashboard for `Accept: text/html`, Prometheus text for `?format=prometheus`.
 */
export const { GET, POST, PUT, PATCH, DELETE } = route({
  GET: async (request) => {
    requireAdmin(request, getConfig(), { basic: true });
    const format = statusFormat(request);
    return renderStatus(await readStatus(await getContext()), format);
  },
});
