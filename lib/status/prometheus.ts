import type { StatusReport } from './report.js';

/** Prometheus text exposition format 0.0.4 of the status report. Every metric is prefixed. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const P = 'stream_triggers_';

type Labels = Record<string, string | null>;

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

class Exposition {
  private lines: string[] = [];
  metric(name: string, type: 'gauge' | 'counter', help: string, samples: [Labels, number | null][]): void {
    this.lines.push(`# HELP ${P}${name} ${help}`, `# TYPE ${P}${name} ${type}`);
    for (const [labels, value] of samples) {
      if (value === null || !Number.isFinite(value)) continue;
      const ls = Object.entries(labels)
        .filter(([, v]) => v !== null)
        .map(([k, v]) => `${k}="${label(v as string)}"`)
        .join(',');
      this.lines.push(`${P}${name}${ls ? `{${ls}}` : ''} ${value}`);
    }
  }
  toString(): string {
    return this.lines.join('\n') + '\n';
  }
}

const s = (ms: number | null) => (ms === null ? null : ms / 1000);

/**
 * Per stream (labels `stream`, `org`): state, lag, token age, failures, gaps, dead letters, last run
 * and relay gauges, for the rows in `r.streams` — from the route, the partition, source and shared
 * streams, relayed streams and failing ones (lib/status/report.ts `readSeriesStreams`), not the
 * 10,000 `org:` streams of a collection layout, which are counted in the totals. Totals: streams by
 * state, max lag, gaps, reconciles, never-drained and unlisted streams, jobs, dead letters,
 * dual-run (all dual organizations, and per organization for the ones that disagree most), throughput.
 */
export function renderPrometheus(r: StatusReport): string {
  const x = new Exposition();
  const id = (st: StatusReport['streams'][number]) => ({ stream: st.id, org: st.orgId });
  const states = ['idle', 'draining', 'recovering', 'failing', 'paused'] as const;
  x.metric('stream_state', 'gauge', 'Stream state (1 for the current state).', r.streams.flatMap((st) => states.map((state): [Labels, number] => [{ ...id(st), state }, st.state === state ? 1 : 0])));
  x.metric('stream_lag_seconds', 'gauge', 'Age of the stream resume point (now minus token cluster time).', r.streams.map((st) => [id(st), s(st.lagMs)]));
  x.metric('stream_token_age_seconds', 'gauge', 'Time since the stream token was last saved.', r.streams.map((st) => [id(st), s(st.tokenAgeMs)]));
  x.metric('stream_consecutive_failures', 'gauge', 'Failed drain runs in a row.', r.streams.map((st) => [id(st), st.consecutiveFailures]));
  x.metric('stream_gaps_total', 'counter', 'Recovery windows recorded (history lost, invalid token, backfill).', r.streams.map((st) => [id(st), st.gaps.count]));
  x.metric('stream_dead_letters', 'gauge', 'Dead-lettered events not yet replayed.', r.streams.map((st) => [id(st), st.deadLetters]));
  x.metric('stream_last_run_events', 'gauge', 'Events drained by the last run.', r.streams.map((st) => [id(st), st.lastRun?.events ?? null]));
  // Relay metrics only for relayed streams (partitions, busy sources): bounded by P plus a few.
  const relayed = r.streams.filter((st) => st.relay !== null);
  const rl = (pick: (st: StatusReport['streams'][number]) => number | null) => relayed.map((st): [Labels, number | null] => [id(st), pick(st)]);
  x.metric('stream_relay_generation', 'gauge', 'Relay chain generation that holds or last held the stream.', rl((st) => st.relay!.generation));
  x.metric('stream_relay_handover_gap_seconds', 'gauge', 'Last handover gap: predecessor release to successor first read.', rl((st) => s(st.relay!.lastGapMs)));
  x.metric('stream_relay_handover_gap_p50_seconds', 'gauge', 'Median of recent handover gaps.', rl((st) => s(st.relay!.gapP50Ms)));
  x.metric('stream_relay_handover_gap_p99_seconds', 'gauge', '99th percentile of recent handover gaps.', rl((st) => s(st.relay!.gapP99Ms)));
  x.metric('stream_relay_restarts_total', 'counter', 'Relay chains restarted by the watchdog.', rl((st) => st.relay!.restarts));
  x.metric('streams', 'gauge', 'Streams by state.', states.map((state) => [{ state }, r.totals.byState[state]]));
  x.metric('streams_max_lag_seconds', 'gauge', 'Largest lag of any stream.', [[{}, s(r.totals.maxLagMs)]]);
  x.metric('streams_gaps', 'gauge', 'Lost-history windows recorded over every stream.', [[{}, r.totals.gaps]]);
  x.metric('streams_reconciles', 'gauge', 'Scans run on purpose (manual reconcile, backfill, restart) over every stream.', [[{}, r.totals.reconciles]]);
  x.metric('streams_never_drained', 'gauge', 'Listed streams without a checkpoint yet.', [[{}, r.totals.neverDrained]]);
  x.metric('streams_unlisted', 'gauge', 'Checkpoints of streams no longer listed.', [[{}, r.totals.unlisted]]);
  x.metric('jobs', 'gauge', 'Workflow jobs by status.', Object.entries(r.jobs.byStatus).map(([status, n]) => [{ status }, n]));
  x.metric('jobs_oldest_queued_age_seconds', 'gauge', 'Age of the oldest due queued job.', [[{}, s(r.jobs.oldestQueuedAgeMs)]]);
  x.metric('dead_letters', 'gauge', 'Dead-letter queue sizes.', [[{ queue: 'events' }, r.deadLetters.events], [{ queue: 'jobs' }, r.deadLetters.jobs]]);
  x.metric(
    'dual_run_jobs',
    'gauge',
    'Jobs in the last 24 h by which paths saw them, for the dual-mode organizations where the paths disagree most.',
    r.dualRun.orgs.flatMap((o) => [
      [{ org: o.orgId, seen_by: 'both' }, o.both],
      [{ org: o.orgId, seen_by: 'explicit_only' }, o.explicitOnly],
      [{ org: o.orgId, seen_by: 'change_stream_only' }, o.changeStreamOnly],
      [{ org: o.orgId, seen_by: 'other' }, o.other],
    ] as [Labels, number][]),
  );
  x.metric('dual_run_jobs_all', 'gauge', 'Jobs of every dual-mode organization in the last 24 h by which paths saw them.', [
    [{ seen_by: 'both' }, r.dualRun.total.both],
    [{ seen_by: 'explicit_only' }, r.dualRun.total.explicitOnly],
    [{ seen_by: 'change_stream_only' }, r.dualRun.total.changeStreamOnly],
    [{ seen_by: 'other' }, r.dualRun.total.other],
  ]);
  x.metric('drain_events_per_second', 'gauge', 'Events drained per second over the last 5 minutes.', [[{}, r.throughput.eventsPerSec]]);
  x.metric('drain_runs_recent', 'gauge', 'Drain runs in the recent window (30 min).', [[{}, r.throughput.runs]]);
  x.metric('trigger_latency_seconds', 'gauge', 'Insert to job latency over recent runs.', [
    [{ stat: 'avg' }, s(r.throughput.latencyMsAvg)],
    [{ stat: 'max' }, s(r.throughput.latencyMsMax)],
  ]);
  return x.toString();
}
