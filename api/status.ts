import { getConfig, getContext } from '../lib/platform/context.js';
import { requireAdmin } from '../lib/http/auth.js';
import { route } from '../lib/http/route.js';
import { readStatus } from '../lib/status/report.js';
import { streamView } from '../lib/status/page.js';
import { renderStatus, statusFormat } from '../lib/status/render.js';

/**
 * `GET /api/status` — admin token (Bearer, or as the Basic password from a browser).
 * JSON by default, the dashboard for `Accept: text/html`, Prometheus text for `?format=prometheus`.
 * The dashboard's stream rows take `?q=` (organization or stream id) and `?page=`.
 */
export const { GET, POST, PUT, PATCH, DELETE } = route({
  GET: async (request) => {
    requireAdmin(request, getConfig(), { basic: true });
    const format = statusFormat(request);
    const view = streamView(new URL(request.url));
    return renderStatus(await readStatus(await getContext()), format, view);
  },
});
