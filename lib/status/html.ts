import type { StatusReport, StreamStatus } from './report.js';
import { throughputChart } from './chart.js';
import { clockTime, count, duration, escapeHtml as e } from './format.js';

/** Seconds between automatic reloads of the dashboard. */
export const DASHBOARD_REFRESH_S = 10;

/** Served with the dashboard: nothing external may load, no script runs. */
export const DASHBOARD_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const CSS = `
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 20px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0} header span{opacity:.8}
main{padding:16px 20px;display:grid;gap:16px}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:12px 16px}
h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eceff3;white-space:nowrap}
th{font-weight:600;color:#4a5266;font-size:12px;text-transform:uppercase;letter-spacing:.03em} td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.s-idle{background:#e3f4e8;color:#17663a}.s-draining{background:#e2edfc;color:#1b4f9c}.s-recovering{background:#fff2d6;color:#8a5a00}
.s-failing{background:#fde2e1;color:#a1231b}.s-paused{background:#ececec;color:#555}
.tiles{display:flex;gap:12px;flex-wrap:wrap}.tile{border:1px solid #eceff3;border-radius:6px;padding:8px 12px;min-width:110px}
.tile b{display:block;font-size:20px}.tile small{color:#4a5266}.warn b{color:#a1231b}
.chart .bar{fill:#7aa7e8}.chart .bar.failed{fill:#e8837a}.chart .lat{stroke:#d9822b;fill:#d9822b;stroke-width:2}
.chart .axis{stroke:#9aa3b5}.chart .lbl{font-size:11px;fill:#4a5266}.chart .lat-l{fill:#d9822b}
.legend{font-size:12px;color:#4a5266}.legend i{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
.muted{color:#8a92a6}.err{color:#a1231b}
`;

function tile(label: string, value: string, warn = false): string {
  return `<div class="tile${warn ? ' warn' : ''}"><b>${e(value)}</b><small>${e(label)}</small></div>`;
}

function streamRow(s: StreamStatus): string {
  const run = s.lastRun;
  const runText = run
    ? `${e(run.status)} · ${count(run.events)} events · ${count(run.jobsCreated)} jobs${run.judgedOnLookup ? ` (${count(run.judgedOnLookup)} judged on a lookup)` : ''} · ${e(run.stoppedBy)} · ${clockTime(run.startedAt)}`
    : '<span class="muted">never drained</span>';
  const gap = s.gaps.recent[0];
  const gapText = s.gaps.count
    ? `${count(s.gaps.count)} <span class="muted">(last ${clockTime(gap?.from)}–${clockTime(gap?.to)}, ${count(gap?.count ?? 0)} docs)</span>${s.gaps.unplaced ? ` <span class="err">${count(s.gaps.unplaced)} unplaced</span>` : ''}`
    : '0';
  return `<tr data-stream="${e(s.id)}">
<td>${e(s.id)}${s.listed ? '' : ' <span class="muted">(not listed)</span>'}</td>
<td><span class="badge s-${e(s.state)}">${e(s.state)}</span></td>
<td class="num">${duration(s.lagMs)}</td>
<td class="num">${duration(s.tokenAgeMs)}</td>
<td>${runText}${run?.error ? `<div class="err">${e(run.error.code)}: ${e(run.error.message)}</div>` : ''}</td>
<td class="num">${count(s.consecutiveFailures)}</td>
<td>${gapText}</td>
<td class="num">${count(s.deadLetters)}</td>
</tr>`;
}

/** The dashboard: a page a person reads at a glance, refreshed every few seconds. */
export function renderHtml(r: StatusReport): string {
  const states = Object.entries(r.totals.byState)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `<span class="badge s-${e(state)}">${count(n)} ${e(state)}</span>`)
    .join(' ');
  const j = r.jobs.byStatus;
  const dual = r.dualRun.orgs.length
    ? `<table><thead><tr><th>organization</th><th>both paths</th><th>explicit only</th><th>change stream only</th><th>other</th><th>jobs</th></tr></thead><tbody>
${r.dualRun.orgs.map((o) => `<tr><td>${e(o.orgId)}</td><td class="num">${count(o.both)}</td><td class="num">${count(o.explicitOnly)}</td><td class="num">${count(o.changeStreamOnly)}</td><td class="num">${count(o.other)}</td><td class="num">${count(o.total)}</td></tr>`).join('\n')}
</tbody></table>`
    : '<p class="muted">No organization in dual mode created jobs in the last 24 h.</p>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="${DASHBOARD_REFRESH_S}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Stream triggers · status</title><style>${CSS}</style></head>
<body>
<header><h1>Stream triggers</h1><span>${count(r.totals.streams)} streams ${states}</span>
<span>fan-out: ${r.rollout.qstash ? 'QStash' : 'in-process'} · last tick ${clockTime(r.fanout.lastAt)}</span>
<span>generated ${e(r.generatedAt.toISOString())} · refreshes every ${DASHBOARD_REFRESH_S} s</span></header>
<main>
<section id="summary"><div class="tiles">
${tile('max lag', duration(r.totals.maxLagMs))}
${tile('events/s (5 min)', String(r.throughput.eventsPerSec))}
${tile('insert→job latency', duration(r.throughput.latencyMsAvg))}
${tile('jobs queued', count(j.queued))}
${tile('jobs running', count(j.running))}
${tile('jobs succeeded', count(j.succeeded))}
${tile('jobs dead', count(j.dead), j.dead > 0)}
${tile('oldest queued', duration(r.jobs.oldestQueuedAgeMs))}
${tile('dead-lettered events', count(r.deadLetters.events), r.deadLetters.events > 0)}
${tile('gaps recorded', count(r.totals.gaps), r.totals.gaps > 0)}
</div></section>
<section id="chart"><h2>Last ${Math.round(r.throughput.windowMs / 60_000)} minutes</h2>
${throughputChart(r.throughput.series)}
<div class="legend"><i style="background:#7aa7e8"></i>events drained per minute<i style="background:#d9822b"></i>mean insert→job latency<i style="background:#e8837a"></i>minute with a failed run</div>
</section>
<section id="streams"><h2>Streams</h2>
<table><thead><tr><th>stream</th><th>state</th><th>lag</th><th>token age</th><th>last run</th><th>failures</th><th>gaps</th><th>dead letters</th></tr></thead>
<tbody>
${r.streams.length ? r.streams.map(streamRow).join('\n') : '<tr><td colspan="8" class="muted">No streams yet.</td></tr>'}
</tbody></table></section>
<section id="dual"><h2>Dual-run agreement (last 24 h)</h2>${dual}</section>
</main></body></html>`;
}
