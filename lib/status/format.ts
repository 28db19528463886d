/** Small formatting helpers shared by the HTML dashboard and the operator CLI. */

export function escapeHtml(value: unknown): string {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** `850 ms`, `12.3 s`, `4 min`, `3.5 h`, `2 d`; `—` for null. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 86_400_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} d`;
}

/** Time of day in UTC, `HH:MM:SS`, or `—`. */
export function clockTime(d: Date | null | undefined): string {
  return d ? d.toISOString().slice(11, 19) : '—';
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}
