import type { CheckpointDoc } from '../data/documents.js';

/**
 * The relay side of a stream's status (lib/fanout/relay.ts): generation, handover gaps and watchdog
 * restarts, read from the checkpoint's `relay` field. Null for streams no relay window ever drained.
 */
export interface StreamRelayStatus {
  generation: number;
  /** The chain is meant to go on (a successor was published and not refused). */
  live: boolean;
  /** Last handover gap (predecessor's release → successor's first read), ms. */
  lastGapMs: number | null;
  /** Percentiles (nearest rank) of the recent handover gaps kept on the checkpoint (up to 50), ms. */
  gapP50Ms: number | null;
  gapP99Ms: number | null;
  /** Handover gaps the percentiles are computed over. */
  gapsCounted: number;
  /** Chains restarted by the watchdog. */
  restarts: number;
  lastPublishedAt: Date | null;
  lastRestartAt: Date | null;
}

/** Nearest-rank percentile of `values` (0 < p ≤ 100); null for an empty list. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]!;
}

export function relayStatus(cp: Pick<CheckpointDoc, 'relay'> | null): StreamRelayStatus | null {
  const r = cp?.relay;
  if (!r) return null;
  const gaps = r.gaps ?? [];
  return {
    generation: r.generation,
    live: r.live ?? false,
    lastGapMs: r.lastGapMs ?? null,
    gapP50Ms: percentile(gaps, 50),
    gapP99Ms: percentile(gaps, 99),
    gapsCounted: gaps.length,
    restarts: r.restarts ?? 0,
    lastPublishedAt: r.lastPublishedAt ?? null,
    lastRestartAt: r.lastRestartAt ?? null,
  };
}
