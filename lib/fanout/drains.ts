import type { AppContext } from '../platform/context.js';
import { Deadline } from '../platform/clock.js';
import type { DrainSummary, StartedBy } from '../data/documents.js';
import type { StreamRef } from '../streams/refs.js';
import { listStreams } from '../streams/refs.js';
import { drainStream } from '../drain/drain.js';

/** In-process drains of several streams inside one function window (no QStash, operator "all"). */

/** Below this much time left, the in-process fan-out does not start another drain. */
const MIN_DRAIN_WINDOW_MS = 1_000;

/** Drain streams one after another until `deadline`; each drain gets at most the time left. */
export async function drainSequentially(ctx: AppContext, streams: StreamRef[], deadline: Deadline, startedBy: StartedBy) {
  const runs: DrainSummary[] = [];
  const notReached: string[] = [];
  for (const stream of streams) {
    const left = deadline.remaining();
    if (left < MIN_DRAIN_WINDOW_MS) {
      notReached.push(stream.id);
      continue;
    }
    runs.push(await drainStream(ctx, stream, { windowMs: Math.min(ctx.config.DRAIN_WINDOW_MS, left), startedBy }));
  }
  return { runs, notReached };
}

/** Drain every listed stream now, in-process, inside the caller's window (operator "all"). */
export async function drainAll(ctx: AppContext, windowMs: number, startedBy: StartedBy = 'manual') {
  const deadline = Deadline.after(ctx.clock, windowMs);
  return drainSequentially(ctx, await listStreams(ctx), deadline, startedBy);
}
