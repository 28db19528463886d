import { getConfig, getContext } from '../lib/platform/context.js';
import { requireAdmin } from '../lib/http/auth.js';
import { json, route } from '../lib/http/route.js';
import { readStreamsView } from '../lib/status/organizations.js';
import { readSeriesStreams, readStatus } from '../lib/status/report.js';
import { streamView } from '../lib/status/page.js';
import { renderStatus, statusFormat } from '../lib/status/render.js';

/**
 * `GET /api/status` — admin token (Bearer, or as the Basic password from a browser).
 * JSON by default, the dashboard for `Accept: text/html`, Prometheus text for `?format=prometheus`.
 * Stream rows (JSON and dashboard) are one page, most lagging first (lib/status/streams.ts):
 * `?org=` (or `?q=`) organization or stream id prefix, case-insensitive; `?page=` 1-based, a page
 * past the end shows the last; `?limit=` 1–500, default 50. A bad value is a 400 naming it.
 * Prometheus gets per-stream series for partitions, sources, shared, relayed and failing streams
 * only, and totals for all (lib/status/prometheus.ts).
 * `?view=streams[&org=<id prefix>][&page=0][&limit=50]`: partitions, open cursors and one page of
 * organizations with the stream that serves each (lib/status/organizations.ts; README "Status").
 */
export const { GET, POST, PUT, PATCH, DELETE } = route({
  GET: async (request) => {
    requireAdmin(request, getConfig(), { basic: true });
    const params = new URL(request.url).searchParams;
    if (params.get('view') === 'streams') {
      const num = (name: string) => (params.has(name) ? Number(params.get(name)) : undefined);
      return json(200, await readStreamsView(await getContext(), { org: params.get('org') ?? undefined, page: num('page'), limit: num('limit') }));
    }
    const format = statusFormat(request);
    const query = streamView(new URL(request.url));
    const ctx = await getContext();
    if (format === 'prometheus') {
      const [report, series] = await Promise.all([readStatus(ctx, { ...query, limit: 1 }), readSeriesStreams(ctx)]);
      return renderStatus({ ...report, streams: series }, format);
    }
    return renderStatus(await readStatus(ctx, query), format);
  },
});
