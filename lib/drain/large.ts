import { Timestamp, type ChangeStream, type ChangeStreamDocument, type Db, type Document } from 'mongodb';
import type { ResumeToken } from '../data/documents.js';
import type { PoisonEvent } from '../dispatch/plan.js';
import { tokenId, tokenPosition } from '../streams/token.js';
import { FragmentAssembler, SPLIT_STAGE, supportsSplitEvents } from './split.js';

/**
 * Stepping over a change event the server cannot return (lib/drain/classify.ts `oversized_event`).
 *
 * Without `$changeStreamSplitLargeEvent` (servers before 6.0.9/7.0, or DRAIN_SPLIT_LARGE_EVENTS=off),
 * an event over 16 MiB fails the aggregate or getMore with BSONObjectTooLarge (10334), and so does
 * every resume before it: the stream would stall for good. mongod's message names the event, as
 * the first element of the BSON object that was too large (`BSONObj::_validateUnownedSize`):
 * `BSONObj size: N (0x..) is invalid. Size must be between 0 and 16793600(16MB) First element:
 * _id: { _data: "8264..." }`. The drain then
 *
 * 1. describes that event through a stream that excludes the large fields (`$project`), from the
 *    same saved position (operation type, namespace, document key, cluster time);
 * 2. dead-letters it with its position (resume token and cluster time) and the reason;
 * 3. reads on from the saved position with `$match` excluding that one event, so the events before
 *    and after it are dispatched as usual and the token moves past it with the next flush.
 *
 * After a crash in between, the next run meets the same error and does the same again: the dead
 * letter is keyed by the event's token, so it is written once.
 */

/** The `_data` of the event a BSONObjectTooLarge message names, or null when it names none. */
export function oversizedEventData(error: unknown): string | null {
  const message = String((error as { message?: unknown } | null)?.message ?? '');
  const match = /First element: _id: \{ _data: "([0-9A-Fa-f]+)" \}/.exec(message);
  return match ? match[1]! : null;
}

/** Fields of a change event that carry documents (what can make it large). */
export const LARGE_EVENT_FIELDS = ['fullDocument', 'fullDocumentBeforeChange', 'updateDescription'] as const;

/** Pipeline stages of the stream that describes one event without its large fields. */
export function describeStages(data: string): Document[] {
  return [{ $match: { '_id._data': data } }, { $project: Object.fromEntries(LARGE_EVENT_FIELDS.map((f) => [f, 0])) }];
}

/** The `$match` stage that leaves out the events already stepped over (by token). */
export function skipStage(data: readonly string[]): Document {
  return { $match: { '_id._data': { $nin: [...data] } } };
}

/** The dead letter of an event stepped over; `described` is the event without its large fields, when it could be read. */
export function oversizedPoison(data: string, described: ChangeStreamDocument<Document> | null, error: unknown): PoisonEvent {
  const token: ResumeToken = { _data: data };
  const ev = (described ?? {}) as { operationType?: string; clusterTime?: Timestamp; wallTime?: Date; documentKey?: unknown };
  const pos = tokenPosition(token);
  const clusterTime = ev.clusterTime ?? (pos ? new Timestamp({ t: Number.parseInt(pos.slice(0, 8), 16), i: Number.parseInt(pos.slice(8, 16), 16) }) : null);
  const code = (error as { code?: unknown } | null)?.code;
  return {
    input: {
      // Unknown when the event could not be described: `update` is the only kind that can grow past
      // 16 MiB with a document under 16 MiB (updateDescription beside the looked-up document).
      operationType: (ev.operationType ?? 'update') as 'insert' | 'update' | 'replace',
      document: null,
      eventId: tokenId(token),
      clusterTime,
      wallTime: ev.wallTime instanceof Date ? ev.wallTime : null,
      documentKey: ev.documentKey ?? null,
    },
    code: 'oversized',
    reason: `change event at resume token ${data} (cluster time ${clusterTime ? `${clusterTime.high}.${clusterTime.low}` : 'unknown'}) is larger than the server can return (error ${String(code)}: over 16 MiB); stepped over`,
  };
}

/**
 * Read the first event of a stream within a few reads (each waits at most the stream's
 * maxAwaitTimeMS), then close it; null when none came.
 */
export async function readOne(cs: ChangeStream, reads = 3): Promise<ChangeStreamDocument<Document> | null> {
  try {
    for (let i = 0; i < reads; i++) {
      const event = await cs.tryNext();
      if (event) return event;
    }
    return null;
  } finally {
    await cs.close().catch(() => undefined);
  }
}

/**
 * What one drain pass knows about large events: whether the server splits them (decided at the
 * start of the pass, cached per warm instance), the assembler of split events, and the events
 * stepped over in this pass (left out of every stream it opens).
 */
export class LargeEvents {
  split = false;
  readonly assembler = new FragmentAssembler();
  readonly skipped: string[] = [];

  async init(db: Db, setting: 'auto' | 'off'): Promise<void> {
    this.split = setting === 'auto' && (await supportsSplitEvents(db));
  }

  /** Stages to append to the drain's pipeline (`$changeStreamSplitLargeEvent` must come last). */
  stages(): Document[] {
    const out: Document[] = [];
    if (this.skipped.length) out.push(skipStage(this.skipped));
    if (this.split) out.push({ ...SPLIT_STAGE });
    return out;
  }
}

/**
 * Locate and describe the event a BSONObjectTooLarge error names, and leave it out of the pass
 * from now on. `open(stages)` opens the drain's stream from its saved position with `stages` in
 * place of its own tail and without document lookups. Throws the original error when the event
 * cannot be located (no token in the message) or was already stepped over in this pass.
 */
export async function stepOverOversized(
  error: unknown,
  large: LargeEvents,
  open: (stages: Document[]) => ChangeStream,
): Promise<{ data: string; poison: PoisonEvent }> {
  const data = oversizedEventData(error);
  if (!data || large.skipped.includes(data)) throw error;
  const described = await readOne(open([...(large.skipped.length ? [skipStage(large.skipped)] : []), ...describeStages(data)])).catch(() => null);
  large.skipped.push(data);
  return { data, poison: oversizedPoison(data, described, error) };
}
