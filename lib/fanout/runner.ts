import type { AppContext } from '../platform/context.js';
import { fullJitterMs } from '../platform/backoff.js';
import { COLLECTIONS } from '../data/mongo.js';
import type { CheckpointDoc } from '../data/documents.js';
import type { StreamRef } from '../streams/refs.js';
import { relayWindow, type RelayWindowResult, type SuccessorOutcome } from './relay.js';

/**
 * The relay without QStash (in-process mode, e.g. `npm start --in-process`): one loop per stream,
 * each turn a relay window of the next generation, under the same fence as the QStash chain. The
 * successor of window g is the loop's next turn (g+1), so a second runner, a QStash chain or a
 * watchdog restart that took a higher generation makes this loop's next window `superseded`, and it
 * stops. Stop it with the AbortSignal: the window in progress ends at its next loop turn.
 */

export interface RelayRunnerSummary {
  streamId: string;
  /** Windows that took the lease. */
  windows: number;
  /** Last generation this runner tried. */
  generation: number;
  /** Why the loop ended: the signal, or a newer chain superseded it. */
  stoppedBy: 'aborted' | 'superseded';
}

export interface RelayRunnerOptions {
  /** Called after every window (progress display, tests). */
  onWindow?: (result: RelayWindowResult) => void;
  /** Relay without pause whatever the stream kind; default: partitions only (relayWindow). */
  continuous?: boolean;
}

/** Wait `ms` on the context's clock, or less if the signal fires. */
function pause(ctx: AppContext, ms: number, signal: AbortSignal): Promise<void> {
  return ctx.clock.sleep(ms, signal);
}

/** Run the relay of one stream in this process until `signal` fires or a newer chain supersedes it. */
export async function runRelay(ctx: AppContext, stream: StreamRef, signal: AbortSignal, opts: RelayRunnerOptions = {}): Promise<RelayRunnerSummary> {
  const cp = await ctx.db.collection<CheckpointDoc>(COLLECTIONS.checkpoints).findOne({ _id: stream.id }, { projection: { relay: 1 } });
  let generation = (cp?.relay?.generation ?? 0) + 1;
  const summary: RelayRunnerSummary = { streamId: stream.id, windows: 0, generation, stoppedBy: 'aborted' };
  // In-process, handing on is the loop's next turn; it is recorded like a publish for the watchdog.
  const successor = async (_s: StreamRef, g: number): Promise<SuccessorOutcome> => ({ generation: g, published: true, messageId: null, deduplicated: false });
  let failures = 0;
  while (!signal.aborted) {
    summary.generation = generation;
    const result = await relayWindow(ctx, stream, generation, { startedBy: 'relay', successor, signal, ...(opts.continuous !== undefined ? { continuous: opts.continuous } : {}) });
    opts.onWindow?.(result);
    if (result.superseded) {
      summary.stoppedBy = 'superseded';
      break;
    }
    if (result.run.status === 'skipped') {
      // Held by another drain (a tick, an operator) or paused: the same generation tries again.
      await pause(ctx, 200, signal);
      continue;
    }
    summary.windows++;
    generation++;
    failures = result.run.status === 'failed' ? failures + 1 : 0;
    if (failures) await pause(ctx, fullJitterMs(failures, 200, 10_000), signal);
  }
  return summary;
}

/** Start one runner per stream; `stop()` aborts them all and waits for their windows to end. */
export function startRelayRunners(ctx: AppContext, streams: StreamRef[], opts: RelayRunnerOptions = {}) {
  const controller = new AbortController();
  const runs = streams.map((s) =>
    runRelay(ctx, s, controller.signal, opts).catch((error: unknown) => {
      ctx.log.error('in-process relay stopped on an error', { streamId: s.id, error });
      return null;
    }),
  );
  return {
    done: Promise.all(runs),
    async stop() {
      controller.abort();
      return Promise.all(runs);
    },
  };
}
