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

/** One kick per this many ms at most (a trailing one included), per process and (through the dedup id) across processes. */
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
  /** The interval of the last kick sent (a trailing kick counts for the interval it runs in). */
  private lastBucket = -1;
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly ctx: AppContext) {}

  /**
   * Ask for a processor run now; never throws. The first request of an interval is sent at once. A
   * later request in the same interval may come from a flush whose jobs were written after the
   * kicked run found nothing more to do, so it is not dropped: it sends one trailing kick for the
   * next interval (through QStash delayed by a second, deduplicated as that interval's kick), and
   * further requests until then are covered by it. So every flush is followed by a processor run
   * that starts after its jobs were written, at most one kick per interval.
   * Without QStash the in-process port is called on every request: it runs one processor run at a
   * time and folds requests during a run into one more run (`singleFlightRuns`).
   */
  request(): void {
    this.outcome.requested++;
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
    const now = Math.floor(this.ctx.clock.now() / JOBS_KICK_INTERVAL_MS);
    if (this.lastBucket > now) return; // a trailing kick for the next interval is already out
    const bucket = this.lastBucket === now ? now + 1 : now;
    this.lastBucket = bucket;
    const delaySeconds = bucket > now ? Math.ceil(JOBS_KICK_INTERVAL_MS / 1000) : 0;
    const sending = (async () => {
      const [result] = await publisher.publishBatch([
        {
          url: publicUrl(this.ctx.config, '/api/jobs/process'),
          body: { kick: bucket * JOBS_KICK_INTERVAL_MS },
          deduplicationId: jobsKickDedupId(bucket),
          flowControlKey: JOBS_KICK_FLOW_KEY,
          ...(delaySeconds ? { delaySeconds } : {}),
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
