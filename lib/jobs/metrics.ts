import type { AppContext } from '../platform/context.js';
import type { JobStatus } from '../data/documents.js';
import { jobsCollection } from './claim.js';

export const JOB_STATUSES: readonly JobStatus[] = ['queued', 'running', 'succeeded', 'failed', 'dead'];

export interface JobMetricsOptions {
  /** Window for rates, attempts and latency, by `finishedAt`. Default one hour. */
  recentMs?: number;
  /** Most recent finished jobs read for those figures. Default 5,000. */
  sampleLimit?: number;
}

/** The jobs part of the status read model. */
export interface JobMetrics {
  /** Every status present, 0 when none. */
  counts: Record<JobStatus, number>;
  /** Queued jobs whose `runAt` has passed. */
  due: number;
  /** How long the earliest due queued job has been waiting since its `runAt`; null when none is due. */
  oldestDueAgeMs: number | null;
  recent: {
    windowMs: number;
    /** Finished jobs read (capped by `sampleLimit`; `truncated` when more finished in the window). */
    sampled: number;
    truncated: boolean;
    succeeded: number;
    /** Jobs that went `dead` in the window. */
    failed: number;
    /** succeeded / (succeeded + failed); null when nothing finished. */
    successRate: number | null;
    failureRate: number | null;
    /** Mean attempts of the finished jobs. */
    avgAttempts: number | null;
    /** Trigger → completion of succeeded jobs: finishedAt − (eventWallTime ?? createdAt), ms. */
    latencyMs: { p50: number | null; p95: number | null; p99: number | null; max: number | null };
  };
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/**
 * A few index-backed queries, never a pass per job: one count per status (status_runAt index
 * prefix), the earliest due job, and the most recent finished jobs of the window (bounded) for
 * rates, attempts and latency percentiles, computed here because `$percentile` needs MongoDB 7.0.
 */
export async function jobMetrics(ctx: AppContext, opts: JobMetricsOptions = {}): Promise<JobMetrics> {
  const recentMs = opts.recentMs ?? 3_600_000;
  const sampleLimit = opts.sampleLimit ?? 5_000;
  const nowMs = ctx.clock.now();
  const now = new Date(nowMs);
  const jobs = jobsCollection(ctx.db);

  const [countList, due, oldest, finished] = await Promise.all([
    Promise.all(JOB_STATUSES.map((status) => jobs.countDocuments({ status }))),
    jobs.countDocuments({ status: 'queued', runAt: { $lte: now } }),
    jobs.findOne({ status: 'queued', runAt: { $lte: now } }, { sort: { runAt: 1 }, projection: { runAt: 1 } }),
    jobs
      .find(
        { status: { $in: ['succeeded', 'dead'] }, finishedAt: { $gte: new Date(nowMs - recentMs) } },
        { projection: { status: 1, attempts: 1, finishedAt: 1, eventWallTime: 1, createdAt: 1 } },
      )
      .sort({ finishedAt: -1 })
      .limit(sampleLimit + 1)
      .toArray(),
  ]);

  const counts = Object.fromEntries(JOB_STATUSES.map((s, i) => [s, countList[i] ?? 0])) as Record<JobStatus, number>;
  const truncated = finished.length > sampleLimit;
  const sample = truncated ? finished.slice(0, sampleLimit) : finished;
  let succeeded = 0;
  let failed = 0;
  let attempts = 0;
  const latencies: number[] = [];
  for (const job of sample) {
    attempts += job.attempts ?? 0;
    if (job.status === 'dead') {
      failed++;
      continue;
    }
    succeeded++;
    const from = job.eventWallTime ?? job.createdAt;
    if (job.finishedAt && from) latencies.push(Math.max(0, job.finishedAt.getTime() - from.getTime()));
  }
  latencies.sort((a, b) => a - b);
  const total = succeeded + failed;
  return {
    counts,
    due,
    oldestDueAgeMs: oldest ? Math.max(0, nowMs - oldest.runAt.getTime()) : null,
    recent: {
      windowMs: recentMs,
      sampled: sample.length,
      truncated,
      succeeded,
      failed,
      successRate: total ? succeeded / total : null,
      failureRate: total ? failed / total : null,
      avgAttempts: total ? attempts / total : null,
      latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99), max: latencies.at(-1) ?? null },
    },
  };
}
