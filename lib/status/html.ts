import type { GapReason } from '../data/documents.js';
import type { StatusReport, StreamStatus } from './report.js';
import { throughputChart } from './chart.js';
import { clockTime, count, duration, escapeHtml as e } from './format.js';
import { DEFAULT_STREAM_LIMIT, type StreamPageInfo } from './streams.js';

/** Dual-run rows shown: the organizations where the two paths disagree most. */
const DUAL_ROWS = 20;

/** Seconds between automatic reloads of the dashboard. */
export const DASHBOARD_REFRESH_S = 10;

/** Served with the dashboard: nothing external may load, no script runs; the search form submits to the page itself. */
export const DASHBOARD_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** Why a recovery window was recorded, in words, by its reason. */
export const GAP_REASONS: Record<GapReason, string> = {
  history_lost: 'change-stream history lost: the resume point had left the oplog, so a scan of the source dispatched the window',
  invalid_token: 'the saved resume token could not be used, so a scan of the source dispatched the window',
  manual: 'manual reconcile (POST /api/trigger reconcileSince or ops reconcile): a scan run on purpose, not lost history',
  backfill: 'backfill: a scan run on purpose, not lost history',
  restart: 'operator restart (ops restart or POST /api/trigger action restart): the skipped window was scanned on purpose',
};

const CSS = `
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330;overflow-wrap:anywhere}
header{background:#1d2330;color:#fff;padding:12px 20px;display:flex;gap:6px 24px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0} header span{opacity:.8}
main{padding:16px 20px;display:grid;gap:16px;grid-template-columns:minmax(0,1fr)}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:12px 16px;min-width:0}
h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eceff3;vertical-align:top}
th{font-weight:600;color:#4a5266;font-size:12px;text-transform:uppercase;letter-spacing:.03em;overflow-wrap:normal} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap}
.s-idle{background:#e3f4e8;color:#17663a}.s-draining{background:#e2edfc;color:#1b4f9c}.s-recovering{background:#fff2d6;color:#8a5a00}
.s-failing{background:#fde2e1;color:#a1231b}.s-paused{background:#ececec;color:#555}
.tiles{display:grid;gap:10px;grid-template-columns:repeat(auto-fill,minmax(120px,1fr))}.tile{border:1px solid #eceff3;border-radius:6px;padding:8px 10px;min-width:0}
.tile b{display:block;font-size:19px}.tile small{color:#4a5266}.warn b{color:#a1231b}
svg.chart{display:block;width:100%;max-width:720px;height:auto}
.chart .bar{fill:#7aa7e8}.chart .bar.failed{fill:#e8837a}
.chart polyline.lat{stroke:#d9822b;stroke-width:2;fill:none}.chart circle.lat{fill:#d9822b;stroke:none}
.chart .axis{stroke:#9aa3b5}.chart .lbl{font-size:11px;fill:#4a5266}.chart .lat-l{fill:#d9822b}
.legend{font-size:12px;color:#4a5266}.legend i{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
.muted{color:#8a92a6}.err{color:#a1231b}.why{font-size:12px;color:#4a5266}
form.search{display:flex;gap:8px;flex-wrap:wrap;margin:0 0 8px} form.search input{flex:1 1 160px;min-width:0;padding:4px 6px;font:inherit}
nav.pager{display:flex;gap:12px;flex-wrap:wrap;margin-top:8px}
@media (max-width:640px){
  header,main{padding-left:10px;padding-right:10px}
  table.rows thead{display:none}
  table.rows tr{display:block;border-bottom:1px solid #dde1e8;padding:4px 0}
  table.rows td{display:flex;gap:8px;justify-content:space-between;border:0;padding:2px 4px;text-align:right}
  table.rows td::before{content:attr(data-label);font-weight:600;color:#4a5266;text-align:left;flex:0 0 auto}
  table.rows td.num{white-space:normal}
}
`;

function tile(label: string, value: string, warn = false): string {
  return `<div class="tile${warn ? ' warn' : ''}"><b>${e(value)}</b><small>${e(label)}</small></div>`;
}

const td = (label: string, html: string, cls = '') => `<td data-label="${e(label)}"${cls ? ` class="${cls}"` : ''}>${html}</td>`;

function gapCell(s: StreamStatus): string {
  const parts: string[] = [];
  const g = s.gaps.recent[0];
  if (s.gaps.count) {
    parts.push(
      `<span class="err">${count(s.gaps.count)} lost-history</span> <span class="muted">(last ${clockTime(g?.from)}–${clockTime(g?.to)}, ${count(g?.count ?? 0)} docs)</span>` +
        (g ? `<div class="why">${e(GAP_REASONS[g.reason] ?? g.reason)}</div>` : ''),
    );
  }
  if (s.gaps.unplaced) parts.push(`<span class="err">${count(s.gaps.unplaced)} unplaced</span>`);
  const r = s.reconciles.recent[0];
  if (s.reconciles.count) {
    parts.push(
      `<span class="muted">${count(s.reconciles.count)} reconcile${s.reconciles.count === 1 ? '' : 's'}</span>` +
        (r ? `<div class="why">${e(r.reason)} at ${clockTime(r.recordedAt)}: scanned ${count(r.count)} docs, ${count(r.jobsCreated)} jobs created — ${e(GAP_REASONS[r.reason] ?? r.reason)}</div>` : ''),
    );
  }
  return parts.length ? parts.join('') : '0';
}

function streamRow(s: StreamStatus): string {
  const run = s.lastRun;
  const runText = run
    ? `${e(run.status)} · ${count(run.events)} events · ${count(run.jobsCreated)} jobs${run.judgedOnLookup ? ` (${count(run.judgedOnLookup)} judged on a lookup)` : ''} · ${e(run.stoppedBy)} · ${clockTime(run.startedAt)}`
    : '<span class="muted">never drained</span>';
  return `<tr data-stream="${e(s.id)}" data-kind="${e(s.kind)}">
${td('stream', `${e(s.id)}${s.listed ? '' : ' <span class="muted">(not listed)</span>'}`)}
${td('state', `<span class="badge s-${e(s.state)}">${e(s.state)}</span>`)}
${td('lag', duration(s.lagMs), 'num')}
${td('token age', duration(s.tokenAgeMs), 'num')}
${td('last run', `${runText}${run?.error ? `<div class="err">${e(run.error.code)}: ${e(run.error.message)}</div>` : ''}`)}
${td('failures', count(s.consecutiveFailures), 'num')}
${td('gaps', gapCell(s))}
${td('dead letters', count(s.deadLetters), 'num')}
</tr>`;
}

function link(view: StreamPageInfo, page: number, text: string): string {
  const qs = new URLSearchParams({ ...(view.q ? { q: view.q } : {}), ...(view.limit !== DEFAULT_STREAM_LIMIT ? { limit: String(view.limit) } : {}), page: String(page) });
  return `<a href="?${e(qs.toString())}">${e(text)}</a>`;
}

function streamsSection(r: StatusReport): string {
  const view = r.streamsPage;
  const p = { ...view, rows: r.streams };
  const first = p.matched ? (p.page - 1) * view.limit + 1 : 0;
  const showing = p.matched
    ? `${count(first)}–${count(first + p.rows.length - 1)} of ${count(p.matched)}${view.q ? ` matching “${e(view.q)}”` : ''} · failing first, then most lagging`
    : view.q
      ? `no stream matches “${e(view.q)}”`
      : 'no streams yet';
  const pager = p.pages > 1
    ? `<nav class="pager">${p.page > 1 ? link(view, 1, '« first') + link(view, p.page - 1, '‹ previous') : ''}<span>page ${p.page} of ${p.pages}</span>${p.page < p.pages ? link(view, p.page + 1, 'next ›') + link(view, p.pages, 'last »') : ''}</nav>`
    : '';
  return `<section id="streams"><h2>Streams</h2>
<form class="search" method="get" action=""><input type="search" name="q" value="${e(view.q)}" placeholder="organization or stream id (starts with)" aria-label="search streams"><button type="submit">search</button></form>
<p class="muted" id="showing">${showing}</p>
<table class="rows"><thead><tr><th>stream</th><th>state</th><th>lag</th><th>token age</th><th>last run</th><th>failures</th><th>gaps</th><th>dead letters</th></tr></thead>
<tbody>
${p.rows.map(streamRow).join('\n')}
</tbody></table>${pager}
<p class="why">lag: how long ago the oldest event the stream has not read was written — 0 when the last drain read everything there was. token age: time since the resume token was saved.</p></section>`;
}

function jobsSection(r: StatusReport): string {
  const v = r.jobsView;
  const dead = v.dead.length
    ? `<table class="rows"><thead><tr><th>workflow</th><th>organization</th><th>error</th><th>dead jobs</th><th>last</th></tr></thead><tbody>
${v.dead
  .map(
    (g) => `<tr data-dead-workflow="${e(g.workflowId)}" data-code="${e(g.code)}">${td('workflow', `${e(g.workflowName ?? g.workflowId)} <span class="muted">${e(g.workflowId)}</span>`)}${td('organization', e(g.organizationId ?? '—'))}${td('error', `<b>${e(g.code)}</b>${g.message ? `<div class="why">${e(g.message)}</div>` : ''}`)}${td('dead jobs', count(g.jobs), 'num')}${td('last', clockTime(g.lastAt))}</tr>`,
  )
  .join('\n')}
</tbody></table>${v.moreDeadGroups ? `<p class="muted">${count(v.moreDeadGroups)} more workflow/error groups</p>` : ''}
<p class="why">Replay them once the cause is fixed: POST /api/jobs/retry {"filter": {"workflowId": …}, "useCurrentWorkflow": true} (or npm run ops -- retry-dead --workflow … --use-current-workflow), with "dryRun": true first.</p>`
    : '<p class="muted">No dead jobs.</p>';
  const j = r.jobs.byStatus;
  const lat = r.jobs.metrics.recent.latencyMs;
  return `<section id="jobs"><h2>Jobs</h2>
<div class="tiles">
${tile('waiting for a first attempt', count(v.queued.waitingFirstAttempt))}
${tile('retrying (next attempt > 1)', count(v.queued.retrying), v.queued.retrying > 0)}
${tile('running', count(j.running))}
${tile('succeeded', count(j.succeeded))}
${tile('dead', count(j.dead), j.dead > 0)}
${tile('insert→delivered p50', duration(lat.p50))}
${tile('insert→delivered p99', duration(lat.p99))}
</div>
<h2 style="margin-top:12px">Dead jobs by workflow and error</h2>
${dead}</section>`;
}

/**
 * The dashboard: a page a person reads at a glance, refreshed every few seconds. It shows the one
 * page of stream rows the report holds (searched and paged by the query, lib/status/streams.ts), so
 * the page stays small with thousands of organizations; the dual-run rows are the report's top ones.
 */
export function renderHtml(r: StatusReport): string {
  const states = Object.entries(r.totals.byState)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `<span class="badge s-${e(state)}">${count(n)} ${e(state)}</span>`)
    .join(' ');
  const j = r.jobs.byStatus;
  const e2e = r.jobs.metrics.recent.latencyMs;
  // The organizations where the paths disagree most (matching the search), as the report read them.
  const dualOrgs = r.dualRun.orgs;
  const dual = dualOrgs.length
    ? `<table class="rows"><thead><tr><th>organization</th><th>both paths</th><th>explicit only</th><th>change stream only</th><th>other</th><th>jobs</th></tr></thead><tbody>
${dualOrgs.slice(0, DUAL_ROWS).map((o) => `<tr>${td('organization', e(o.orgId))}${td('both paths', count(o.both), 'num')}${td('explicit only', count(o.explicitOnly), 'num')}${td('change stream only', count(o.changeStreamOnly), 'num')}${td('other', count(o.other), 'num')}${td('jobs', count(o.total), 'num')}</tr>`).join('\n')}
</tbody></table>${r.dualRun.organizations > dualOrgs.length ? `<p class="muted">${count(r.dualRun.organizations)} organizations in dual mode with jobs; the ${count(dualOrgs.length)} where the paths disagree most are shown (search to find one). All: both ${count(r.dualRun.total.both)} · explicit only ${count(r.dualRun.total.explicitOnly)} · change stream only ${count(r.dualRun.total.changeStreamOnly)} · other ${count(r.dualRun.total.other)}</p>` : ''}`
    : '<p class="muted">No organization in dual mode created jobs in the last 24 h.</p>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="${DASHBOARD_REFRESH_S}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Stream triggers · status</title><style>${CSS}</style></head>
<body>
<header><h1>Stream triggers</h1><span>${count(r.totals.streams)} streams ${states}</span>
<span>fan-out: ${r.rollout.qstash ? 'QStash' : 'in-process'} · last tick ${clockTime(r.fanout.lastAt)}</span>
<span>generated ${clockTime(r.generatedAt)} UTC · refreshes every ${DASHBOARD_REFRESH_S} s</span></header>
<main>
<section id="summary"><div class="tiles">
${tile('max lag', duration(r.totals.maxLagMs))}
${tile('events/s (5 min)', String(r.throughput.eventsPerSec))}
${tile('insert→job avg', duration(r.throughput.latencyMsAvg))}
${tile('insert→delivered p50 / p99', e2e.p50 === null ? '—' : `${duration(e2e.p50)} / ${duration(e2e.p99)}`)}
${tile('jobs queued', count(j.queued))}
${tile('jobs retrying', count(r.jobsView.queued.retrying), r.jobsView.queued.retrying > 0)}
${tile('jobs dead', count(j.dead), j.dead > 0)}
${tile('oldest queued', duration(r.jobs.oldestQueuedAgeMs))}
${tile('dead-lettered events', count(r.deadLetters.events), r.deadLetters.events > 0)}
${tile('gaps (history lost)', count(r.totals.gaps), r.totals.gaps > 0)}
${tile('reconciles', count(r.totals.reconciles))}
</div></section>
<section id="chart"><h2>Last ${Math.round(r.throughput.windowMs / 60_000)} minutes</h2>
${throughputChart(r.throughput.series)}
<div class="legend"><i style="background:#7aa7e8"></i>events read per minute<i style="background:#d9822b"></i>mean insert→job latency<i style="background:#e8837a"></i>minute with a failed run</div>
</section>
${jobsSection(r)}
${streamsSection(r)}
<section id="dual"><h2>Dual-run agreement (last 24 h)</h2>${dual}</section>
</main></body></html>`;
}
