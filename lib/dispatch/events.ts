import { type ChangeStreamDocument, type Document, type Timestamp } from 'mongodb';
import type { JudgedOn, SubmissionEvent } from '../data/documents.js';
import type { ResumeToken } from '../data/documents.js';
import { tokenId } from '../streams/token.js';

/** Change events (and explicit calls) as dispatch inputs: what was written, to which submission, when. */

/** One submission seen by a trigger path: a change event, an explicit call, a scan hit. */
export interface DispatchInput {
  operationType: SubmissionEvent;
  document: Record<string, unknown> | null;
  /** Event identity (resume token data) — part of the job key for update/replace. */
  eventId: string | null;
  clusterTime: Timestamp | null;
  wallTime: Date | null;
  documentKey?: unknown;
  /** Change events: which state of the submission `document` is (lib/drain/images.ts). */
  judgedOn?: JudgedOn;
  /**
   * The organization the event's namespace names (`submissions_{orgId}` on a partition stream); null
   * for a legacy shared collection (the document's `organizationId`); absent: the stream's own.
   */
  orgId?: string | null;
  /**
   * When the submission was saved, for paths that judge workflows "in force at t" from the timeline
   * (scans, reconcile); absent when the registry already stands at the event's time.
   */
  savedAt?: Date | null;
}

/** A change event as dispatch sees it (insert/update/replace; the document from fullDocument). */
export function changeEventInput(e: ChangeStreamDocument<Document>): DispatchInput {
  const ev = e as ChangeStreamDocument<Document> & { fullDocument?: Document | null; clusterTime?: Timestamp; wallTime?: Date; documentKey?: unknown };
  return {
    operationType: e.operationType as SubmissionEvent,
    document: (ev.fullDocument ?? null) as Record<string, unknown> | null,
    eventId: tokenId(e._id as ResumeToken),
    clusterTime: ev.clusterTime ?? null,
    wallTime: ev.wallTime instanceof Date ? ev.wallTime : null,
    documentKey: ev.documentKey,
  };
}

/** Wall time of the last event of a batch, when the server sent one. */
export function lastWallTime(events: readonly ChangeStreamDocument<Document>[]): Date | null {
  const w = (events[events.length - 1] as { wallTime?: unknown } | undefined)?.wallTime;
  return w instanceof Date ? w : null;
}
