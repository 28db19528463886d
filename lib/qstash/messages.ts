/**
 * What the product's QStash messages carry besides their body: the destination URL (from
 * PUBLIC_BASE_URL, never from the request), deduplication ids and flow-control keys. Every id and
 * key the product publishes is built here.
 *
 * QStash deduplicates messages with the same `Upstash-Deduplication-Id` for a window (its docs:
 * "Deduplication"), and limits parallel deliveries per `Upstash-Flow-Control-Key` ("Flow Control").
 */
import { NotConfiguredError } from '../platform/errors.js';
import type { Config } from '../platform/config.js';
import { parseStreamId } from '../streams/refs.js';

/** An absolute URL of this deployment, as QStash addresses it (never derived from `request.url`). */
export function publicUrl(config: Config, path: string): string {
  if (!config.PUBLIC_BASE_URL) throw new NotConfiguredError('PUBLIC_BASE_URL');
  return config.PUBLIC_BASE_URL.replace(/\/+$/, '') + path;
}

/** QStash ids and keys: keep them to a conservative alphabet. */
function idSafe(value: string): string {
  return value.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/** Flow-control key of a stream: its organization (org and source streams of one org share it), else the stream. */
export function flowKeyFor(streamId: string): string {
  const parsed = parseStreamId(streamId);
  return parsed && (parsed.kind === 'org' || parsed.kind === 'source') ? `org-${idSafe(parsed.rest)}` : `stream-${idSafe(streamId)}`;
}

/** Flow-control key of the job processor's continuations: one chain at a time. */
export const JOBS_FLOW_KEY = 'jobs-process';

/**
 * Flow-control key of job-processor kicks (lib/jobs/kick.ts). Apart from JOBS_FLOW_KEY, so a kick is
 * not held behind a continuation in flight; one kick at a time, and at most one per second is published.
 */
export const JOBS_KICK_FLOW_KEY = 'jobs-kick';

/** Dedup id of a job-processor kick: one per time bucket, whichever drain asks (not per stream). */
export function jobsKickDedupId(bucket: number): string {
  return `jobs-kick-${bucket}`;
}

/**
 * Flow-control key of a stream's relay chain, with parallelism 2: a successor must be delivered
 * while its predecessor's invocation is still running (it waits for the lease at handover). With the
 * stream's own key at parallelism 1, QStash would hold the successor until the predecessor answered,
 * adding the predecessor's tail and a delivery to every gap.
 */
export function relayFlowKey(streamId: string): string {
  return `relay-${idSafe(streamId)}`;
}

/** Parallel deliveries allowed under `relayFlowKey`: the running window and its successor. */
export const RELAY_PARALLELISM = 2;

/** Dedup id of a relay successor: one per stream and generation, whoever publishes it. */
export function relayDedupId(streamId: string, generation: number): string {
  return idSafe(`relay-${streamId}-${generation}`);
}

/** Dedup id of a watchdog restart: per stream, generation and cron tick (duplicate tick deliveries restart once). */
export function relayRestartDedupId(streamId: string, generation: number, tick: string): string {
  return idSafe(`relay-${streamId}-${generation}-restart-${tick}`);
}

/** Dedup id of a tick's drain of one stream: duplicate deliveries of one cron tick publish it once. */
export function drainDedupId(streamId: string, tick: string): string {
  return idSafe(`drain-${streamId}-${tick}`);
}

/** Dedup id of a busy drain's continuation: tied to the run, so a redelivered run continues once. */
export function drainContinuationDedupId(streamId: string, runId: string): string {
  return idSafe(`drain-cont-${streamId}-${runId}`);
}

/** Dedup id of a job run's continuation: tied to the run's owner id. */
export function jobsContinuationDedupId(owner: string): string {
  return idSafe(`jobs-cont-${owner}`);
}

/**
 * Dedup id of a parallel processor run ("lane") a lead run publishes: one per wave (the lead's
 * owner id) and lane, so a redelivered lead does not add its lanes twice.
 */
export function jobsLaneDedupId(wave: string, lane: number): string {
  return idSafe(`jobs-lane-${wave}-${lane}`);
}

/**
 * Flow-control key of lane `lane` (1 … JOB_PARALLELISM − 1): one run per lane at a time, so
 * however many waves overlap, at most JOB_PARALLELISM − 1 lanes (plus the lead chain) run at once.
 */
export function jobsLaneFlowKey(lane: number): string {
  return `${JOBS_FLOW_KEY}-lane-${lane}`;
}
