import type { ChangeStreamDocument, Db, Document, MongoClient } from 'mongodb';
import type { ResumeToken } from '../data/documents.js';

/**
 * Change events over 16 MiB (docs: "Large Change Events"). With `$changeStreamSplitLargeEvent` as
 * the last stage of the pipeline, mongod (7.0+, 6.0.9+) returns such an event as fragments
 * `{_id: <fragment token>, splitEvent: {fragment: n, of: total}, ...some top-level fields}`, in
 * order, each with its own resume token (server: change_stream_split_event_helpers.cpp). Here they
 * are put back together into one event whose `_id` is the last fragment's token, and the token a
 * drain may save is never one from the middle of an event.
 */

type Event = ChangeStreamDocument<Document>;

/** The last stage of the drain's pipeline when the server splits large events. */
export const SPLIT_STAGE = { $changeStreamSplitLargeEvent: {} } as const;

const support = new WeakMap<MongoClient, Promise<boolean>>();

/**
 * Whether the server has `$changeStreamSplitLargeEvent`: 7.0 and later, and 6.0.9 and later in
 * the 6.0 series (release notes of 6.0.9 and 7.0). Decided once per client, that is once per warm
 * function instance, from `buildInfo.version`; an answer that cannot be read counts as no.
 */
export function supportsSplitEvents(db: Db): Promise<boolean> {
  let known = support.get(db.client);
  if (!known) {
    known = db
      .admin()
      .command({ buildInfo: 1 })
      .then((info) => splitSupportedIn(String(info.version ?? '')))
      .catch(() => false);
    support.set(db.client, known);
  }
  return known;
}

/** `supportsSplitEvents` for a version string such as "7.0.2" or "6.0.9-ent". */
export function splitSupportedIn(version: string): boolean {
  const [major = NaN, minor = NaN, patch = NaN] = version.split(/[.-]/).map((p) => Number.parseInt(p, 10));
  if (!Number.isFinite(major) || !Number.isFinite(minor)) return false;
  if (major !== 6) return major > 6;
  return minor > 0 || (Number.isFinite(patch) && patch >= 9);
}

/**
 * Puts split events back together. Feed every event read with `push`; it returns the whole event
 * once its last fragment is in (an unsplit event comes straight back), null while one is pending.
 */
export class FragmentAssembler {
  private fields: Document | null = null;
  private expected = 0;
  private next = 0;
  /** The stream's token as it stood before the pending event's first fragment was read. */
  private before: ResumeToken | null = null;

  /** True while some fragments of an event are read and the rest are not. */
  get pending(): boolean {
    return this.fields !== null;
  }

  /**
   * Take one event as read. `tokenBefore` is the stream's resume token just before this read: if
   * the event is a first fragment, that is the token to save until the event is whole.
   * Throws if fragments arrive out of order (they never do from mongod on one cursor).
   */
  push(event: Event, tokenBefore: ResumeToken | null): Event | null {
    const split = (event as { splitEvent?: { fragment?: unknown; of?: unknown } }).splitEvent;
    if (!split) {
      if (this.fields) throw new Error('an unsplit change event arrived while a split one was incomplete');
      return event;
    }
    const fragment = Number(split.fragment);
    const of = Number(split.of);
    if (fragment === 1) {
      this.fields = {};
      this.expected = of;
      this.before = tokenBefore;
    } else if (!this.fields || fragment !== this.next || of !== this.expected) {
      throw new Error(`change event fragment ${fragment} of ${of} arrived out of order`);
    }
    this.next = fragment + 1;
    const { _id, splitEvent: _split, ...rest } = event as Document;
    Object.assign(this.fields!, rest);
    if (fragment < of) return null;
    const whole = { _id, ...this.fields } as Event;
    this.reset();
    return whole;
  }

  /** The token it is safe to save now: the stream's, unless an event is half read. */
  safeToken(streamToken: ResumeToken | null): ResumeToken | null {
    return this.pending ? this.before : streamToken;
  }

  /** Forget a half-read event (the stream is reopened from a saved token, before its first fragment). */
  reset(): void {
    this.fields = null;
    this.expected = 0;
    this.next = 0;
    this.before = null;
  }
}
