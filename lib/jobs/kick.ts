import type { AppContext } from '../platform/context.js';
import { squashError } from '../platform/errors.js';
import { JOBS_KICK_FLOW_KEY, jobsKickDedupId, publicUrl } from '../qstash/messages.js';

/**
 * Jobs right away: when a drain's flush creates jobs, ask for a job-processor run at once instead
 * of waiting for the next cron minute. Through QStash a message to `/api/jobs/process`, deduplicated
 * per interval (`jobs-kick-{bucket}`, the same id from every drain in that interval, so QStash accepts
 * one); without QStash the context's in-process port (`AppContext.runJobsNow`).
 *
 * A kick never blocks nor fails the drain: it is fired, its outcome observed and counted, and
 * `settled()` lets the invocation wait for it before returning (a function is frozen after it answers).
 */

/** One kick per this many ms at most, per process and (through the dedup id) across processes. */
export const JOBS_KICK_INTERVAL_MS = 1_000;

/** What the kicks of one drain did. */
export interface JobsKickOutcome {
  /** Flushes that created jobs. */
  requested: number;
  /** Kicks sent (published to QStash or handed to the in-process port). */
  sent: number;
  /** Kicks QStash answered as duplicates of one already accepted for that interval. */
  deduplicated: number;
  /** Kicks that failed (QStash unreachable or refused); the next cron minute runs the jobs anyway. */
  failed: number;
}

export class JobsKick {
  readonly outcome: JobsKickOutcome = { requested: 0, sent: 0, deduplicated: 0, failed: 0 };
  private lastBucket = -1;
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly ctx: AppContext) {}

  /** Ask for a processor run now; at most one per JOBS_KICK_INTERVAL_MS. Never throws. */
  request(): void {
    this.outcome.requested++;
    const bucket = Math.floor(this.ctx.clock.now() / JOBS_KICK_INTERVAL_MS);
    if (bucket === this.lastBucket) return;
    this.lastBucket = bucket;
    const { publisher, runJobsNow } = this.ctx;
    if (!publisher) {
      if (!runJobsNow) return;
      this.outcome.sent++;
      try {
        runJobsNow();
      } catch (error) {
        this.outcome.failed++;
        this.ctx.log.warn('in-process job run could not be started', { error });
      }
      return;
    }
    const sending = (async () => {
      const [result] = await publisher.publishBatch([
        {
          url: publicUrl(this.ctx.config, '/api/jobs/process'),
          body: { kick: bucket * JOBS_KICK_INTERVAL_MS },
          deduplicationId: jobsKickDedupId(bucket),
          flowControlKey: JOBS_KICK_FLOW_KEY,
        },
      ]);
      if (!result || result.error) throw new Error(result?.error ?? 'no answer from QStash');
      this.outcome.sent++;
      if (result.deduplicated) this.outcome.deduplicated++;
    })().catch((error: unknown) => {
      this.outcome.failed++;
      this.ctx.log.warn('job-processor kick failed; the next cron run processes the jobs', { error });
    });
    this.pending.add(sending);
    void sending.finally(() => this.pending.delete(sending)).catch(squashError);
  }

  /** Wait for every kick in flight (they never reject). */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }
}

/**
 * The in-process port behind `AppContext.runJobsNow`: runs `run` (a job-processor run) at once, one
 * at a time; a request while one runs asks for one more run after it (so jobs written during a run
 * are not left for the cron). `run`'s errors go to `onError`.
 */
export function singleFlightRuns(run: () => Promise<unknown>, onError: (error: unknown) => void): () => void {
  let running = false;
  let again = false;
  return () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    void (async () => {
      do {
        again = false;
        await run().catch(onError);
      } while (again);
      running = false;
    })();
  };
}
