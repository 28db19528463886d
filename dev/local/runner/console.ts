import { Cron } from 'croner';
import type { Logger } from '../../../lib/platform/log.js';
import type { CronSpec } from './cron.js';

/**
 * What `npm start` prints besides the routes' own log lines: the lines that tell a newcomer how to
 * reach the stack, when the crons fire, and job failures summarised per workflow and interval
 * instead of one JSON line per failed job.
 */

/** The lines that say how to read the status: a curl that works when pasted, the browser, the CLI. */
export function accessLines(opts: { port: number; adminToken: string; tokenGenerated: boolean; settingsFile: string | null }): string[] {
  const url = `http://localhost:${opts.port}/api/status`;
  const lines = opts.tokenGenerated
    ? [`[status] curl -H "Authorization: Bearer ${opts.adminToken}" ${url}`]
    : [
        `[status] curl -H "Authorization: Bearer $ADMIN_TOKEN" ${url}`,
        '[status]   (ADMIN_TOKEN is the one from your environment: export it in the shell you paste this into)',
      ];
  lines.push(`[status] browser: ${url}  (user: anything, password: the ADMIN_TOKEN)`);
  if (opts.settingsFile) lines.push(`[ops] npm run ops -- status   (in this folder: reads ${opts.settingsFile}, written for this run, removed at exit)`);
  return lines;
}

function describePattern(pattern: string): string {
  if (pattern === '* * * * *') return 'every minute, at second 0';
  const m = /^\*\/(\d+) \* \* \* \*$/.exec(pattern);
  if (m) return `every ${m[1]} minutes`;
  return `cron "${pattern}"`;
}

/** When the crons fire: the vercel.json schedules in UTC with their next run, or the `--tick-seconds` cadence. */
export function cronLines(crons: CronSpec[], tickSeconds: number | undefined, now: Date): string[] {
  if (tickSeconds) {
    return [`[cron] ${crons.map((c) => c.path).join(' and ')} fire every ${tickSeconds} s (--tick-seconds ${tickSeconds}; vercel.json schedules them ${[...new Set(crons.map((c) => describePattern(c.schedule)))].join(' / ')})`];
  }
  const lines = crons.map((c) => {
    const next = new Cron(c.schedule, { timezone: 'UTC', paused: true }).nextRun(now);
    return `[cron] ${c.path}: ${describePattern(c.schedule)} UTC (vercel.json "${c.schedule}"), next at ${next ? next.toISOString().slice(11, 19) : '—'} UTC`;
  });
  lines.push('[cron] start with --tick-seconds N (1..59) to fire them every N seconds instead');
  return lines;
}

interface WorkflowFailures {
  retrying: number;
  dead: number;
  /** Per error code: count and the latest message. */
  codes: Map<string, { n: number; message: string }>;
}

/**
 * Collects the processor's per-job failure log lines (`job dead`, `job attempt failed; retry
 * scheduled`) and prints them as one line per workflow per interval with counts.
 */
export class FailureSummary {
  private byWorkflow = new Map<string, WorkflowFailures>();
  private since: number;

  constructor(nowMs: number) {
    this.since = nowMs;
  }

  /** True when the line was a job failure and is now counted (the caller then does not print it). */
  record(msg: string, fields: Record<string, unknown> | undefined): boolean {
    const kind = msg === 'job dead' ? 'dead' : msg === 'job attempt failed; retry scheduled' ? 'retrying' : null;
    if (!kind) return false;
    // Job keys start with the workflow id: `{workflowId}:{submissionId}:{event}`.
    const key = typeof fields?.key === 'string' ? fields.key : '';
    const workflow = key.includes(':') ? key.slice(0, key.indexOf(':')) : '(unknown workflow)';
    const entry = this.byWorkflow.get(workflow) ?? { retrying: 0, dead: 0, codes: new Map() };
    entry[kind] += 1;
    const code = typeof fields?.code === 'string' ? fields.code : 'error';
    const c = entry.codes.get(code) ?? { n: 0, message: '' };
    c.n += 1;
    if (typeof fields?.reason === 'string') c.message = fields.reason;
    entry.codes.set(code, c);
    this.byWorkflow.set(workflow, entry);
    return true;
  }

  /** The lines for the interval since the last flush (none when nothing failed), and a new interval. */
  flush(nowMs: number): string[] {
    const span = `${new Date(this.since).toISOString().slice(11, 19)}–${new Date(nowMs).toISOString().slice(11, 19)} UTC`;
    const lines = [...this.byWorkflow].sort(([a], [b]) => a.localeCompare(b)).map(([workflow, f]) => {
      const codes = [...f.codes].sort((a, b) => b[1].n - a[1].n).map(([code, c]) => `${code} ×${c.n}${c.message ? ` (${c.message})` : ''}`);
      return `[jobs] ${span} workflow ${workflow}: ${f.dead} dead, ${f.retrying} failed attempts to retry · ${codes.join(', ')}`;
    });
    this.byWorkflow.clear();
    this.since = nowMs;
    return lines;
  }
}

/** A logger that hands job failures to `summary` and everything else to `inner`. */
export function summarisingLogger(inner: Logger, summary: FailureSummary): Logger {
  const wrap = (level: keyof Logger) => (msg: string, fields?: Record<string, unknown>) => {
    if (summary.record(msg, fields)) return;
    inner[level](msg, fields);
  };
  return { debug: wrap('debug'), info: wrap('info'), warn: wrap('warn'), error: wrap('error') } as Logger;
}
