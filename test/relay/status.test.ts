/** The relay in the status read model and its Prometheus output (lib/status/relay.ts). */
import { describe, expect, it } from 'vitest';
import { percentile, relayStatus } from '../../lib/status/relay.js';
import { streamStatus, type StatusReport } from '../../lib/status/report.js';
import { renderPrometheus } from '../../lib/status/prometheus.js';
import { partitionStream, orgStream } from '../../lib/streams/refs.js';
import type { CheckpointDoc } from '../../lib/data/documents.js';

const relayed = {
  relay: { generation: 12, live: true, handoverAt: null, lastPublishedAt: new Date(1_000), releasedAt: null, lastGapMs: 30, gaps: [10, 20, 30, 40, 500], restarts: 2, lastRestartAt: null },
} as unknown as CheckpointDoc;

describe('relay status', () => {
  it('nearest-rank percentiles', () => {
    expect(percentile([], 50)).toBeNull();
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([40, 10, 30, 20], 50)).toBe(20);
    expect(percentile([10, 20, 30, 40, 500], 99)).toBe(500);
  });

  it('reports generation, last gap, p50/p99 of recent gaps and watchdog restarts', () => {
    expect(relayStatus(relayed)).toMatchObject({ generation: 12, live: true, lastGapMs: 30, gapP50Ms: 30, gapP99Ms: 500, gapsCounted: 5, restarts: 2 });
    expect(relayStatus(null)).toBeNull();
    expect(relayStatus({} as CheckpointDoc)).toBeNull();
  });

  it('Prometheus: relay gauges for relayed streams only', () => {
    const p = partitionStream(0, 1);
    const rows = [streamStatus(p, { ...relayed, _id: p.id, lease: null, state: 'idle' } as CheckpointDoc, 0, 2_000, p.id), streamStatus(orgStream('plain'), null, 0, 2_000, 'org:plain')];
    // The parts of a report the stream metrics do not read, empty.
    const report = {
      streams: rows,
      totals: { streams: 2, byState: { idle: 2, draining: 0, recovering: 0, failing: 0, paused: 0 }, maxLagMs: null, gaps: 0, reconciles: 0, neverDrained: 1, unlisted: 0 },
      jobs: { byStatus: {}, oldestQueuedAgeMs: null },
      deadLetters: { events: 0, jobs: 0 },
      dualRun: { orgs: [], organizations: 0, total: { both: 0, explicitOnly: 0, changeStreamOnly: 0, other: 0, total: 0 } },
      throughput: { eventsPerSec: 0, runs: 0, latencyMsAvg: null, latencyMsMax: null },
    } as unknown as StatusReport;
    const text = renderPrometheus(report);
    expect(text).toContain('stream_triggers_stream_relay_generation{stream="partition:0/1"} 12');
    expect(text).toContain('stream_triggers_stream_relay_handover_gap_p99_seconds{stream="partition:0/1"} 0.5');
    expect(text).toContain('stream_triggers_stream_relay_restarts_total{stream="partition:0/1"} 2');
    expect(text).not.toMatch(/stream_relay_generation\{stream="org:plain"/);
  });
});
