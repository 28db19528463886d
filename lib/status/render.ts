import { BadRequestError } from '../platform/errors.js';
import { redact } from '../platform/redact.js';
import { stringifyJson } from '../data/bson-json.js';
import type { StatusReport } from './report.js';
import { DASHBOARD_CSP, renderHtml } from './html.js';
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from './prometheus.js';

export type StatusFormat = 'json' | 'html' | 'prometheus';
const FORMATS: readonly StatusFormat[] = ['json', 'html', 'prometheus'];

/**
 * `?format=json|html|prometheus` wins; otherwise `Accept: text/html` (a browser) gets the dashboard
 * and everything else JSON.
 */
export function statusFormat(request: Request): StatusFormat {
  const asked = new URL(request.url).searchParams.get('format');
  if (asked !== null) {
    if (!(FORMATS as readonly string[]).includes(asked)) {
      throw new BadRequestError(`format must be one of ${FORMATS.join(', ')}; got "${asked.slice(0, 40)}"`);
    }
    return asked as StatusFormat;
  }
  const accept = request.headers.get('accept') ?? '';
  return /\btext\/html\b/i.test(accept) ? 'html' : 'json';
}

/**
 * The response for one format: the report's stream rows as read (one page for JSON and the
 * dashboard, the per-stream series set for Prometheus). URL credentials in any message are redacted
 * (lib/platform/redact.ts).
 */
export function renderStatus(report: StatusReport, format: StatusFormat): Response {
  const common = { 'cache-control': 'no-store', vary: 'accept' };
  switch (format) {
    case 'html':
      return new Response(redact(renderHtml(report)), {
        headers: { ...common, 'content-type': 'text/html; charset=utf-8', 'content-security-policy': DASHBOARD_CSP, 'x-content-type-options': 'nosniff' },
      });
    case 'prometheus':
      return new Response(redact(renderPrometheus(report)), { headers: { ...common, 'content-type': PROMETHEUS_CONTENT_TYPE } });
    case 'json':
      return new Response(redact(stringifyJson(report)), { headers: { ...common, 'content-type': 'application/json; charset=utf-8' } });
  }
}
