import { BSON } from 'mongodb';

/**
 * The text form of a submission's `_id`, used as `submissionId` and inside job keys. Every path that
 * dispatches a submission (change stream, explicit call, reconcile scan, manual re-dispatch) computes
 * it here, so they agree on the key; `decodeSubmissionId` gives the `_id` back for look-ups.
 *
 * Forms (the three are disjoint, so two different `_id`s never share a text form):
 * - ObjectId → its 24 lowercase hex digits, as before, so jobs created before this encoding keep
 *   their keys after an upgrade.
 * - A string that is neither 24 lowercase hex digits nor starts with `~` → the string itself.
 * - Anything else → `~` + canonical Extended JSON (`relaxed: false`): the BSON type is spelled out
 *   (`{"$numberInt":"1"}` is not `"1"`, `{"$numberDecimal":"1"}` is not `{"$numberLong":"1"}`), dates,
 *   binary subtypes and nested documents included, and document field order is kept, because
 *   MongoDB compares embedded documents field by field in order (`{a:1,b:2}` ≠ `{b:2,a:1}`).
 *   A value whose Extended JSON would not read back as the same BSON (a document with field names
 *   like `$oid`, a UUID-subtype binary that is not 16 bytes) is written `~b:` + base64url of its BSON bytes instead.
 *
 * Numbers are taken as the driver hands them out with its default options (promoteLongs,
 * promoteValues): an int64 or double holding a whole number that fits an int32 reads back as the
 * JavaScript number the change stream and every query return, and MongoDB's unique `_id` index
 * treats such numerically equal values as one `_id` anyway
 * (https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/#numeric-types).
 * Normalising first means an application that passes `Long(5)` to the explicit path and the change
 * stream that reads back `5` compute the same key.
 */
export function encodeSubmissionId(id: unknown): string {
  const value = canonical(id);
  if (value instanceof BSON.ObjectId) return value.toHexString();
  if (typeof value === 'string' && !OBJECT_ID_HEX.test(value) && !value.startsWith(TAG)) return value;
  const text = BSON.EJSON.stringify(value, { relaxed: false });
  if (readsBack(text, value)) return `${TAG}${text}`;
  return `${TAG}${BYTES}${Buffer.from(BSON.serialize({ v: value })).toString('base64url')}`;
}

/**
 * The `_id` a text form stands for (the inverse of `encodeSubmissionId` on its own output). Text
 * that is not an encoded form — an id typed by an operator — reads as the plain string it is.
 * Throws `SubmissionIdError` for a `~` form that does not parse.
 */
export function decodeSubmissionId(text: string): unknown {
  if (OBJECT_ID_HEX.test(text)) return new BSON.ObjectId(text);
  if (!text.startsWith(TAG)) return text;
  const body = text.slice(TAG.length);
  try {
    if (body.startsWith(BYTES)) return BSON.deserialize(Buffer.from(body.slice(BYTES.length), 'base64url')).v;
    return BSON.EJSON.parse(body, { relaxed: false });
  } catch (error) {
    throw new SubmissionIdError(`submissionId "${text.slice(0, 80)}" starts with "${TAG}" but is not an encoded _id (${(error as Error).message})`);
  }
}

/**
 * The `_id` values a submissionId given by a person may mean: the decoded one, and for a 24-hex
 * text also the plain string (a string `_id` that only looks like an ObjectId).
 */
export function submissionIdCandidates(text: string): unknown[] {
  const decoded = decodeSubmissionId(text);
  return decoded instanceof BSON.ObjectId ? [decoded, text] : [decoded];
}

export class SubmissionIdError extends Error {
  override readonly name = 'SubmissionIdError';
}

const TAG = '~';
const BYTES = 'b:';
const OBJECT_ID_HEX = /^[0-9a-f]{24}$/;

/** The value as a BSON round trip with the driver's default read options returns it. */
function canonical(id: unknown): unknown {
  return BSON.deserialize(BSON.serialize({ v: id })).v;
}

/** Whether `text` parses back to exactly the BSON of `value` (EJSON refuses some values it writes, e.g. a short UUID binary). */
function readsBack(text: string, value: unknown): boolean {
  try {
    const back = BSON.EJSON.parse(text, { relaxed: false });
    return Buffer.from(BSON.serialize({ v: back })).equals(Buffer.from(BSON.serialize({ v: value })));
  } catch {
    return false;
  }
}
