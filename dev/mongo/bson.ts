/**
 * BSON in and out of the emulator.
 *
 * Documents are kept as the driver's bson values so they round-trip, with one deliberate change:
 * numbers are promoted to JS numbers (Int32, Double, and Int64 values that fit 53 bits), because
 * the query library (mingo) only does arithmetic and ordering on JS numbers. Timestamp and
 * non-UUID Binary values are wrapped in subclasses whose `toString()` sorts and compares like
 * BSON does, because mingo compares unknown classes through `toString()`. The wrappers keep
 * `_bsontype`, so they serialize exactly like the originals.
 */
import { BSON, Binary, Timestamp, UUID, type Document } from 'mongodb';

/** Timestamp whose string form orders like the timestamp (t, then i). */
export class OrderedTimestamp extends Timestamp {}
// Timestamp declares toString as a property in its typings, so the override is installed directly.
Object.defineProperty(OrderedTimestamp.prototype, 'toString', {
  value(this: Timestamp): string {
    return this.t.toString(16).padStart(8, '0') + this.i.toString(16).padStart(8, '0');
  },
});

/** Binary whose string form orders like BSON binData (length, subtype, bytes) and never collides. */
export class OrderedBinary extends Binary {
  override toString(): string {
    const bytes = this.buffer.subarray(0, this.position);
    return (
      bytes.length.toString(16).padStart(8, '0') +
      this.sub_type.toString(16).padStart(2, '0') +
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
    );
  }
}

function normalizeValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = normalizeValue(value[i]);
    return value;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    const obj = value as Record<string, unknown>;
    for (const key in obj) {
      const v = obj[key];
      if (v !== null && typeof v === 'object') obj[key] = normalizeValue(v);
    }
    return obj;
  }
  if (value instanceof Timestamp && !(value instanceof OrderedTimestamp)) {
    return new OrderedTimestamp({ t: value.t, i: value.i });
  }
  if (value instanceof Binary && !(value instanceof UUID) && !(value instanceof OrderedBinary)) {
    return new OrderedBinary(value.buffer.subarray(0, value.position), value.sub_type);
  }
  return value;
}

/** Rewrites bson values in place into the forms described above. */
export function normalize<T>(value: T): T {
  return normalizeValue(value) as T;
}

/** Deserializes one BSON document from `bytes` and normalizes it. */
export function decode(bytes: Uint8Array): Document {
  return normalize(BSON.deserialize(bytes, { validation: { utf8: false } }));
}

export function encode(doc: Document): Uint8Array {
  return BSON.serialize(doc, { checkKeys: false, ignoreUndefined: false });
}

export function sizeOf(doc: Document): number {
  return BSON.calculateObjectSize(doc);
}

const sizes = new WeakMap<object, number>();

/**
 * `sizeOf` remembered per object: for stored documents and other values nothing mutates (see
 * `cloneDoc`), so the size of a large document is computed once, not at every event built from it.
 */
export function cachedSizeOf(doc: Document): number {
  let s = sizes.get(doc);
  if (s === undefined) sizes.set(doc, (s = sizeOf(doc)));
  return s;
}

/** mongod's BSONObjMaxUserSize: the largest document a client may store (16 MiB). */
export const MAX_USER_BSON_SIZE = 16 * 1024 * 1024;

/**
 * Serializes a reply. The bson library's shared buffer holds 17 MiB; a larger reply (mongod sends
 * up to maxMessageSizeBytes, 48,000,000, e.g. a change event of just over 16 MiB) is serialized
 * again with the buffer grown to its size.
 */
export function encodeLarge(doc: Document): Uint8Array {
  try {
    return encode(doc);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    BSON.setInternalBufferSize(sizeOf(doc));
    return encode(doc);
  }
}

/**
 * Deep copy of plain objects and arrays; bson values, dates and regexps are shared because
 * nothing in the emulator mutates them. Stored documents are immutable: an update works on a copy.
 */
export function cloneDoc<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(cloneDoc) as T;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const key in value as Record<string, unknown>) out[key] = cloneDoc((value as Record<string, unknown>)[key]);
  return out as T;
}

export function isPlainObject(value: unknown): value is Document {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
