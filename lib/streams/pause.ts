import type { AppContext } from '../platform/context.js';
import { CheckpointStore } from './checkpoint.js';
import { NotFoundError } from '../platform/errors.js';
import type { CheckpointDoc } from '../data/documents.js';
import type { StreamRef } from './refs.js';
import { resolveStream } from './refs.js';

/**
 * Whether a stream is paused. Pausing is its own field (`paused`), not a value of `state`: `state`
 * is written by whoever holds the lease (release, failure count, recovery), and a drain that was
 * running when an operator paused must not undo the pause when it releases. `state: 'paused'` is
 * still read, for checkpoints written before the field existed.
 */
export function isPaused(cp: Pick<CheckpointDoc, 'state'> & { paused?: boolean | null } | null | undefined): boolean {
  return cp?.paused === true || cp?.state === 'paused';
}

/** How an operator lists the streams there are (named in "unknown stream" errors). */
export const LIST_STREAMS_HINT = 'list streams with `npm run ops -- status` or GET /api/status';

/**
 * Operator action: pause or resume one stream. The stream is resolved like a drain request
 * (`org:<id>`, `source:<id>`, `shared:<collection>`, or an organization id), so a stream that does not
 * exist is a NotFoundError naming it and how to list streams, and nothing is written. A paused
 * stream is skipped by every drain and by the fan-out until it is resumed; a pause taken while a
 * drain holds the lease holds after that drain releases. Returns the stream id acted on.
 */
export async function setStreamPaused(ctx: AppContext, target: { streamId: string } | { orgId: string }, paused: boolean): Promise<{ streamId: string; paused: boolean }> {
  let stream: StreamRef;
  try {
    stream = await resolveStream(ctx, target);
  } catch (error) {
    if (error instanceof NotFoundError) {
      const name = 'streamId' in target ? target.streamId : target.orgId;
      throw new NotFoundError(`unknown stream "${name.slice(0, 80)}" (${error.message}); ${LIST_STREAMS_HINT}`);
    }
    throw error;
  }
  await new CheckpointStore(ctx.db).setPaused(stream, paused, new Date(ctx.clock.now()));
  return { streamId: stream.id, paused };
}
