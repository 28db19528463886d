import type { ThroughputBucket } from './aggregates.js';
import { escapeHtml } from './format.js';

/**
 * A small inline SVG: events drained per minute as bars, mean insert→job latency as a line on its
 * own scale. No script and no external assets, so it renders under a strict CSP.
 */
export function throughputChart(series: ThroughputBucket[], width = 720, height = 180): string {
  const pad = { l: 44, r: 52, t: 14, b: 22 };
  const w = width - pad.l - pad.r;
  const h = height - pad.t - pad.b;
  const n = Math.max(1, series.length);
  const maxEvents = Math.max(1, ...series.map((b) => b.events));
  const lats = series.map((b) => b.latencyMsAvg).filter((v): v is number => v !== null);
  const maxLat = Math.max(1, ...lats);
  const slot = w / n;
  const x = (i: number) => pad.l + i * slot;
  const bars = series
    .map((b, i) => {
      const bh = (b.events / maxEvents) * h;
      const title = `${b.at.toISOString().slice(11, 16)} UTC: ${b.events} events, ${b.runs} runs${b.failed ? `, ${b.failed} failed` : ''}`;
      return `<rect class="bar${b.failed ? ' failed' : ''}" x="${(x(i) + 1).toFixed(1)}" y="${(pad.t + h - bh).toFixed(1)}" width="${Math.max(1, slot - 2).toFixed(1)}" height="${bh.toFixed(1)}"><title>${escapeHtml(title)}</title></rect>`;
    })
    .join('');
  const points = series
    .map((b, i) => (b.latencyMsAvg === null ? null : `${(x(i) + slot / 2).toFixed(1)},${(pad.t + h - (b.latencyMsAvg / maxLat) * h).toFixed(1)}`))
    .filter((p): p is string => p !== null);
  const line = points.length > 1 ? `<polyline class="lat" fill="none" points="${points.join(' ')}"/>` : '';
  const dots = points.map((p) => `<circle class="lat" r="2.5" cx="${p.split(',')[0]}" cy="${p.split(',')[1]}"/>`).join('');
  const first = series[0]?.at.toISOString().slice(11, 16) ?? '';
  const last = series[series.length - 1]?.at.toISOString().slice(11, 16) ?? '';
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="events per minute and trigger latency" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}">
<line class="axis" x1="${pad.l}" y1="${pad.t + h}" x2="${pad.l + w}" y2="${pad.t + h}"/>
<text class="lbl" x="${pad.l - 6}" y="${pad.t + 8}" text-anchor="end">${maxEvents}</text>
<text class="lbl" x="${pad.l - 6}" y="${pad.t + h}" text-anchor="end">0</text>
<text class="lbl lat-l" x="${pad.l + w + 6}" y="${pad.t + 8}">${lats.length ? `${Math.round(maxLat)} ms` : ''}</text>
<text class="lbl" x="${pad.l}" y="${height - 6}">${first}</text>
<text class="lbl" x="${pad.l + w}" y="${height - 6}" text-anchor="end">${last} UTC</text>
${bars}${line}${dots}
</svg>`;
}
