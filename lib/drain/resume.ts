import { Timestamp, type Db } from 'mongodb';
import type { Clock } from '../platform/clock.js';
import { classifyError } from './classify.js';

/**
 * Resume points the server refuses (lib/drain/classify.ts): history lost (286, 136) and tokens it
 * cannot use (260, 280). Such an error is not retried with the same token: the stream is recovered
 * by a scan of the gap, with a recorded gap record.
 */
export function refusedResume(error: unknown): boolean {
  const kind = classifyError(error);
  return kind === 'history_lost' || kind === 'invalid_token';
}

/**
 * The cluster's time now, to open a stream at (`startAtOperationTime`): the `operationTime` of a
 * `ping` (every replica-set reply carries one), else the local clock (seconds, increment 0) when
 * the reply has none. A recovery scan reaches RECOVERY_SKEW_MS past its end, which covers a local
 * clock that runs behind the cluster's.
 */
export async function serverTime(db: Db, clock: Clock): Promise<Timestamp> {
  try {
    const reply = await db.command({ ping: 1 });
    if (reply.operationTime instanceof Timestamp) return reply.operationTime;
  } catch {
    // fall back to the local clock
  }
  return clockTimestamp(clock.now());
}

/** A cluster time for an epoch-ms time (seconds precision, increment 0). */
export function clockTimestamp(ms: number): Timestamp {
  return new Timestamp({ t: Math.floor(ms / 1000), i: 0 });
}

/** The time a cluster time stands for (seconds precision). */
export function timestampDate(ts: Timestamp): Date {
  return new Date(ts.high * 1000);
}
