/** The targets, checked against the measured figures (nothing here is a measured value). */
import type { BacklogResult } from './backlog.js';
import type { LatencyResult } from './latency.js';
import type { ProcessorResult } from './processor.js';
import type { SustainedResult } from './sustained.js';
import type { ThroughputResult } from './throughput.js';

export interface TargetRow {
  name: string;
  value: number;
  unit: string;
  /** What the value is compared with, when it is a ratio. */
  baseline?: number;
  ratio?: number;
  target: string;
  /** null: informational, no target. */
  met: boolean | null;
}

/** Rows for the sections that ran (a null result: the section was left out with `--only`). */
export function evaluateTargets(r: {
  throughput: ThroughputResult | null;
  latency: LatencyResult | null;
  backlog: BacklogResult | null;
  processor: ProcessorResult | null;
  sustained: SustainedResult | null;
}): TargetRow[] {
  const rows: TargetRow[] = [];
  const { throughput: t, latency: l, backlog: b, processor: p, sustained: s } = r;
  if (t) {
    const seq = t.explicit.find((e) => e.concurrency === 1)!;
    const conc = t.explicit.find((e) => e.concurrency !== 1) ?? seq;
    rows.push(
      { name: 'drain events/s (dispatching) vs bare read', value: t.drainEventsPerSec, unit: 'events/s', baseline: t.bareEventsPerSec, ratio: t.drainVsBareRatio, target: 'ratio ≥ 0.6', met: t.drainVsBareRatio >= 0.6 },
      { name: `round trips per event, change stream (batch ${t.batchSize})`, value: t.changeStreamRoundTripsPerEvent, unit: 'round trips', target: '≤ 0.03', met: t.changeStreamRoundTripsPerEvent <= 0.03 },
      { name: 'round trips per submission, explicit path', value: seq.roundTripsPerEvent, unit: 'round trips', target: '≥ 2 (expected)', met: seq.roundTripsPerEvent >= 2 },
      { name: 'change stream vs explicit, 1 at a time', value: t.drainEventsPerSec, unit: 'events/s', baseline: seq.eventsPerSec, ratio: ratio(t.drainEventsPerSec, seq.eventsPerSec), target: '—', met: null },
      { name: `change stream vs explicit, ${conc.concurrency} at a time`, value: t.drainEventsPerSec, unit: 'events/s', baseline: conc.eventsPerSec, ratio: ratio(t.drainEventsPerSec, conc.eventsPerSec), target: '—', met: null },
    );
  }
  if (l) {
    rows.push(
      { name: `insert → job p50 at ${l.targetRatePerSec}/s`, value: l.p50Ms, unit: 'ms', target: '—', met: null },
      { name: `insert → job p95 at ${l.targetRatePerSec}/s`, value: l.p95Ms, unit: 'ms', target: '—', met: null },
      { name: `insert → job p99 at ${l.targetRatePerSec}/s`, value: l.p99Ms, unit: 'ms', target: '≤ 50', met: l.p99Ms <= 50 },
      { name: 'latency run: lost + duplicated jobs', value: l.lost + l.duplicated, unit: 'jobs', target: '0', met: l.lost + l.duplicated === 0 },
    );
  }
  if (b) {
    rows.push(
      { name: `backlog ${b.events.toLocaleString('en-US')}: catch-up in windows`, value: b.eventsPerSec, unit: 'events/s', target: '≥ 15,000', met: b.eventsPerSec >= 15_000 },
      { name: `backlog: windows of ${b.windowMs} ms needed`, value: b.windows, unit: 'windows', target: '—', met: null },
      { name: 'backlog: lost jobs', value: b.lost, unit: 'jobs', target: '0', met: b.lost === 0 },
      { name: 'backlog: duplicated jobs', value: b.duplicated, unit: 'jobs', target: '0', met: b.duplicated === 0 },
      { name: 'peak RSS of one drain invocation', value: b.peakRssMB, unit: 'MB', target: '≤ 200', met: b.peakRssMB <= 200 },
      { name: 'peak heapUsed of one drain invocation', value: b.peakHeapMB, unit: 'MB', target: '—', met: null },
    );
  }
  if (p) {
    rows.push(
      { name: `job processor vs bare POST loop (${p.concurrency} at a time)`, value: p.processorJobsPerSec, unit: 'jobs/s', baseline: p.barePostsPerSec, ratio: p.ratio, target: 'ratio ≥ 0.5', met: p.ratio >= 0.5 },
      { name: `round trips per job, processor (${p.concurrency} at a time)`, value: p.roundTripsPerJob, unit: 'round trips', target: '≤ 0.3', met: p.roundTripsPerJob <= 0.3 },
      { name: 'processor: jobs delivered twice', value: p.duplicateDeliveries, unit: 'jobs', target: '0', met: p.duplicateDeliveries === 0 },
    );
  }
  if (s) {
    rows.push(
      { name: `sustained ${s.offeredPerSec.toLocaleString('en-US')} jobs/s offered: completed`, value: s.completedPerSec, unit: 'jobs/s', baseline: s.offeredPerSec, ratio: ratio(s.completedPerSec, s.offeredPerSec), target: 'ratio ≥ 0.95', met: s.completedPerSec >= 0.95 * s.offeredPerSec },
      { name: 'sustained: queued → done p95', value: s.lagMs.p95, unit: 'ms', target: '—', met: null },
      { name: 'sustained: largest backlog', value: s.maxBacklog, unit: 'jobs', target: '—', met: null },
      { name: 'sustained: round trips per job', value: s.roundTripsPerJob, unit: 'round trips', target: '≤ 0.3', met: s.roundTripsPerJob <= 0.3 },
      { name: 'sustained: lost + duplicated jobs', value: s.queued - s.sinkDistinctKeys + (s.sinkRequests - s.sinkDistinctKeys), unit: 'jobs', target: '0', met: s.sinkDistinctKeys === s.queued && s.sinkRequests === s.queued },
    );
  }
  return rows;
}

function ratio(a: number, b: number): number {
  return b > 0 ? Math.round((a / b) * 100) / 100 : Number.NaN;
}
