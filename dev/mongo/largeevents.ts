/**
 * Change events larger than a BSON document may be, as mongod handles them (docs: "Large Change
 * Events"; server: document_source_change_stream_split_large_event.cpp and
 * change_stream_split_event_helpers.cpp).
 *
 * - Without `$changeStreamSplitLargeEvent`, an event whose BSON exceeds BSONObjMaxInternalSize
 *   (16 MiB + 16 KiB = 16,793,600 bytes) fails the aggregate/getMore with BSONObjectTooLarge (10334),
 *   no error label, and the cursor is gone; resuming before it fails the same way again.
 * - With `$changeStreamSplitLargeEvent` as the last stage, an event over 16,785,408 bytes
 *   (BSONObjMaxInternalSize - 8 KiB) is returned as fragments. The top-level fields other than `_id`
 *   are ordered by (BSON element size, field name), ascending, and filled greedily: each fragment is
 *   `{_id: <fragment token>, splitEvent: {fragment: n, of: total}, ...fields}` and takes fields while
 *   it stays within 16,785,408 minus the event token's size; a single field larger than that fails
 *   with 7182500. Fragment `n` (1-based) has its own resume token; resuming from it returns the
 *   fragments after it.
 */
import { Binary, type Document } from 'mongodb';
import { cachedSizeOf, isPlainObject, sizeOf } from './bson.js';
import { CommandError } from './errors.js';
import { fragmentToken } from './tokens.js';

/** BSONObjMaxInternalSize: the largest document mongod serializes internally (16 MiB + 16 KiB). */
export const MAX_INTERNAL_BSON_SIZE = 16 * 1024 * 1024 + 16 * 1024;
/** kBSONObjMaxChangeEventSize: above this, `$changeStreamSplitLargeEvent` splits an event. */
export const MAX_CHANGE_EVENT_SIZE = MAX_INTERNAL_BSON_SIZE - 8 * 1024;

/** Size of a top-level value's BSON element, cached for the objects nothing mutates. */
function elementSize(key: string, value: unknown): number {
  const name = Buffer.byteLength(key, 'utf8') + 2; // type byte + name + NUL
  if (isPlainObject(value)) return name + cachedSizeOf(value);
  if (typeof value === 'string') return name + Buffer.byteLength(value, 'utf8') + 5;
  if (value === null) return name;
  if (typeof value === 'boolean') return name + 1;
  if (value instanceof Date) return name + 8;
  return sizeOf({ [key]: value }) - 5; // minus the document's length prefix and trailing NUL
}

/**
 * The event's BSON size. Large documents in events (fullDocument, pre-images, updateDescription)
 * are sized once per object, so measuring every event stays cheap.
 */
export function eventSize(event: Document): number {
  let size = 5;
  for (const [k, v] of Object.entries(event)) if (v !== undefined) size += elementSize(k, v);
  return size;
}

/**
 * A cheap upper bound of an event's BSON size, to measure exactly only events that may be large:
 * documents in events (fullDocument, pre-image, documentKey, updateDescription) are shared with the
 * oplog entry and sized once; the small per-event parts (token, ns) are bounded by their strings.
 */
export function eventSizeBound(event: Document): number {
  let bound = 64;
  for (const k in event) {
    const v = event[k];
    bound += k.length * 3 + 2;
    if (k === '_id') bound += 64 + (((v as { _data?: string })._data?.length ?? 0) + 64) * 3;
    else if (k === 'ns' || k === 'to') bound += 1024; // a namespace is at most 255 bytes
    else if (isPlainObject(v)) bound += cachedSizeOf(v);
    else if (typeof v === 'string') bound += 5 + v.length * 3;
    else if (Array.isArray(v) || v instanceof Binary) bound += sizeOf({ v });
    else bound += 64; // scalars: numbers, dates, timestamps, ObjectIds, null, booleans
  }
  return bound;
}

/** mongod's BSONObjectTooLarge (10334) for an event, with its message. */
export function eventTooLarge(event: Document, size: number): CommandError {
  const data = (event._id as { _data?: string } | undefined)?._data ?? '';
  return new CommandError(
    10334,
    `BSONObj size: ${size} (0x${size.toString(16).toUpperCase()}) is invalid. Size must be between 0 and ${MAX_INTERNAL_BSON_SIZE}(16MB) First element: _id: { _data: "${data}" }`,
  );
}

/**
 * Splits an event larger than `MAX_CHANGE_EVENT_SIZE` into fragments (see the module comment);
 * `skip` drops the first fragments (resuming after fragment `skip - 1`). Each fragment comes with
 * its BSON size. Throws 7182500 when one field alone does not fit in a fragment.
 */
export function splitEvent(event: Document, skip = 0): { doc: Document; size: number }[] {
  const token = event._id as Document;
  const maxFragment = MAX_CHANGE_EVENT_SIZE - sizeOf(token);
  const fields = Object.entries(event)
    .filter(([k, v]) => k !== '_id' && v !== undefined)
    .map(([k, v]) => ({ k, v, size: elementSize(k, v) }))
    .sort((a, b) => a.size - b.size || (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  if (fields.length === 0) throw new CommandError(7182502, "Cannot split an empty event or an event containing solely '_id' field");
  const fragments: { doc: Document; size: number }[] = [];
  for (let i = 0; i < fields.length; ) {
    const fragmentId = fragmentToken(token, fragments.length);
    const doc: Document = { _id: fragmentId, splitEvent: { fragment: fragments.length + 1, of: 0 } };
    // mongod measures the fragment with its metadata, where the token appears a second time.
    let size = sizeOf(doc) + sizeOf(fragmentId);
    do {
      doc[fields[i]!.k] = fields[i]!.v;
      size += fields[i]!.size;
      i += 1;
    } while (i < fields.length && size + fields[i]!.size <= maxFragment);
    if (size > maxFragment) {
      throw new CommandError(7182500, `Splitting change event failed: fragment size ${size} is greater than maximum allowed fragment size ${maxFragment}`);
    }
    fragments.push({ doc, size });
  }
  for (const f of fragments) (f.doc.splitEvent as Document).of = fragments.length;
  return fragments.slice(skip);
}
