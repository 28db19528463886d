/**
 * BSON comparison order (used for `sort`) and canonical key strings (used by the `_id` map and
 * index hash maps). Values that mongod considers equal get the same key string: 1, 1.0 and
 * Long(1) are all `n1`; missing and null are both `z`.
 */
import { Decimal128, Long, ObjectId, Timestamp, Binary, MinKey, MaxKey, type Document } from 'mongodb';
import { isPlainObject } from './bson.js';

/** Rank of each BSON type in mongod's cross-type comparison order. */
function typeRank(v: unknown): number {
  if (v === undefined || v === null) return 2;
  switch (typeof v) {
    case 'number':
    case 'bigint':
      return 3;
    case 'string':
      return 4;
    case 'boolean':
      return 9;
  }
  if (v instanceof MinKey) return 1;
  if (v instanceof MaxKey) return 13;
  if (v instanceof Long || v instanceof Decimal128) return 3;
  if (Array.isArray(v)) return 6;
  if (v instanceof Binary) return 7;
  if (v instanceof ObjectId) return 8;
  if (v instanceof Date) return 10;
  if (v instanceof Timestamp) return 11;
  if (v instanceof RegExp) return 12;
  return 5;
}

function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Long) return v.toNumber();
  if (v instanceof Decimal128) return Number(v.toString());
  return NaN;
}

const cmp = (a: number | string, b: number | string) => (a < b ? -1 : a > b ? 1 : 0);

/** Compares two values in BSON order (arrays compared element-wise, as embedded values). */
export function compareValues(a: unknown, b: unknown): number {
  const ra = typeRank(a);
  const rb = typeRank(b);
  if (ra !== rb) return ra - rb;
  switch (ra) {
    case 3: {
      const x = toNumber(a);
      const y = toNumber(b);
      if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : -1;
      if (Number.isNaN(y)) return 1;
      return cmp(x, y);
    }
    case 4:
      return cmp(a as string, b as string);
    case 5:
      return compareObjects(a as Document, b as Document);
    case 6: {
      const xs = a as unknown[];
      const ys = b as unknown[];
      for (let i = 0; i < Math.min(xs.length, ys.length); i++) {
        const c = compareValues(xs[i], ys[i]);
        if (c !== 0) return c;
      }
      return xs.length - ys.length;
    }
    case 7: {
      const x = a as Binary;
      const y = b as Binary;
      if (x.position !== y.position) return x.position - y.position;
      if (x.sub_type !== y.sub_type) return x.sub_type - y.sub_type;
      return Buffer.compare(x.buffer.subarray(0, x.position), y.buffer.subarray(0, y.position));
    }
    case 8:
      return cmp((a as ObjectId).toHexString(), (b as ObjectId).toHexString());
    case 9:
      return cmp(Number(a), Number(b));
    case 10:
      return cmp((a as Date).getTime(), (b as Date).getTime());
    case 11: {
      const x = a as Timestamp;
      const y = b as Timestamp;
      return x.t !== y.t ? cmp(x.t, y.t) : cmp(x.i, y.i);
    }
    case 12:
      return cmp(String(a), String(b));
    default:
      return 0;
  }
}

function compareObjects(a: Document, b: Document): number {
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  for (let i = 0; i < Math.min(ka.length, kb.length); i++) {
    const fa = ka[i]!;
    const fb = kb[i]!;
    const t = typeRank(a[fa]) - typeRank(b[fb]);
    if (t !== 0) return t;
    const n = cmp(fa, fb);
    if (n !== 0) return n;
    const v = compareValues(a[fa], b[fb]);
    if (v !== 0) return v;
  }
  return ka.length - kb.length;
}

/** Canonical string for a value: equal under BSON comparison ⇔ equal strings (for common types). */
/**
 * `keyString(a) === keyString(b)` without building the strings for strings, documents and arrays:
 * a large document (a 10 MB string field) compares in one pass instead of being encoded twice.
 */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === 'string' || typeof b === 'string') return false; // distinct strings, or a string and a non-string
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (isPlainObject(a) || isPlainObject(b)) {
    if (!isPlainObject(a) || !isPlainObject(b)) return false;
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    if (ka.length !== kb.length) return false;
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i] || !sameValue(a[ka[i]!], b[kb[i]!])) return false;
    return true;
  }
  return keyString(a) === keyString(b);
}

export function keyString(v: unknown): string {
  if (v === undefined || v === null) return 'z';
  switch (typeof v) {
    case 'number':
      return Object.is(v, -0) ? 'n0' : 'n' + v;
    case 'string':
      return 's' + JSON.stringify(v);
    case 'boolean':
      return v ? 'b1' : 'b0';
    case 'bigint':
      return 'n' + v.toString();
  }
  if (v instanceof ObjectId) return 'o' + v.toHexString();
  if (v instanceof Date) return 'd' + v.getTime();
  if (Array.isArray(v)) return '[' + v.map(keyString).join(',') + ']';
  if (isPlainObject(v)) {
    let out = '{';
    for (const k in v) out += JSON.stringify(k) + ':' + keyString(v[k]) + ',';
    return out + '}';
  }
  if (v instanceof Long) {
    return Number.isSafeInteger(v.toNumber()) ? 'n' + v.toNumber() : 'n' + v.toString();
  }
  if (v instanceof Decimal128) {
    const n = Number(v.toString());
    return Number.isFinite(n) && String(n) === v.toString() ? 'n' + n : 'n' + v.toString();
  }
  if (v instanceof Timestamp) return 't' + v.t + '.' + v.i;
  if (v instanceof Binary) {
    return 'x' + v.sub_type + ':' + Buffer.from(v.buffer.subarray(0, v.position)).toString('base64');
  }
  if (v instanceof RegExp) return 'r' + String(v);
  if (v instanceof MinKey) return 'min';
  if (v instanceof MaxKey) return 'max';
  return 'u' + String(v);
}

/** Values at a dotted path, descending through arrays the way query paths do. */
export function valuesAtPath(doc: unknown, path: string): unknown[] {
  // Index keys and sort keys are mostly top-level fields: one property read.
  if (isPlainObject(doc) && !path.includes('.')) return [doc[path]];
  const out: unknown[] = [];
  walkPath(doc, path.split('.'), 0, out);
  return out;
}

/** Module-level (not a closure per call): this runs for every index key of every write. */
function walkPath(value: unknown, parts: string[], i: number, out: unknown[]): void {
  if (i === parts.length) {
    out.push(value);
    return;
  }
  if (Array.isArray(value)) {
    const part = parts[i]!;
    if (/^\d+$/.test(part)) {
      walkPath(value[Number(part)], parts, i + 1, out);
      return;
    }
    for (const el of value) if (isPlainObject(el)) walkPath(el, parts, i, out);
    return;
  }
  if (isPlainObject(value)) {
    walkPath(value[parts[i]!], parts, i + 1, out);
    return;
  }
  out.push(undefined);
}

/** The value a sort key uses for a document: arrays contribute their min (asc) or max (desc) element. */
export function sortValue(doc: unknown, path: string, dir: number): unknown {
  // A top-level field holding a non-array is its own sort value: no path walk needed.
  if (isPlainObject(doc) && !path.includes('.')) {
    const v = doc[path];
    if (!Array.isArray(v)) return v;
  }
  const flat: unknown[] = [];
  for (const v of valuesAtPath(doc, path)) {
    if (Array.isArray(v)) flat.push(...(v.length ? v : [undefined]));
    else flat.push(v);
  }
  let best: unknown = flat[0];
  for (let i = 1; i < flat.length; i++) {
    const c = compareValues(flat[i], best);
    if ((dir > 0 && c < 0) || (dir < 0 && c > 0)) best = flat[i];
  }
  return best;
}

/** A sort spec as (path, direction) pairs; direction is 1 or -1. */
export type SortKeys = readonly (readonly [string, 1 | -1])[];

export function sortKeys(spec: Document): SortKeys {
  return Object.entries(spec).map(([k, d]) => [k, Number(d) < 0 ? -1 : 1] as const);
}

/** The values a document sorts by, extracted once per document rather than once per comparison. */
export function sortKeyOf(doc: Document, keys: SortKeys): unknown[] {
  return keys.map(([path, dir]) => sortValue(doc, path, dir));
}

/** Compares two extracted sort keys (see sortKeyOf) in the order of `keys`. */
export function compareSortKeys(a: unknown[], b: unknown[], keys: SortKeys): number {
  for (let i = 0; i < keys.length; i++) {
    const c = compareValues(a[i], b[i]);
    if (c !== 0) return c * keys[i]![1];
  }
  return 0;
}

/** Sorts documents by a `sort` spec (stable: ties keep their input order), returning a new array. */
export function sortDocuments(docs: Document[], spec: Document, keep = 0): Document[] {
  const keys = sortKeys(spec);
  const decorated = docs.map((doc) => ({ doc, key: sortKeyOf(doc, keys) }));
  if (keep > 0 && decorated.length > keep * 2) return firstInOrder(decorated, keep, keys).map((d) => d.doc);
  decorated.sort((a, b) => compareSortKeys(a.key, b.key, keys));
  return decorated.map((d) => d.doc);
}

/**
 * The first `keep` items in sort order, as a stable sort would give them: one pass keeping the best
 * so far in order (a later item goes after the ones it ties with). A claim's "earliest 128 due
 * jobs" no longer sorts the whole queue.
 */
function firstInOrder<T extends { key: unknown[] }>(items: T[], keep: number, keys: SortKeys): T[] {
  const best: T[] = [];
  for (const item of items) {
    if (best.length === keep && compareSortKeys(item.key, best[keep - 1]!.key, keys) >= 0) continue;
    let lo = 0;
    let hi = best.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareSortKeys(item.key, best[mid]!.key, keys) < 0) hi = mid;
      else lo = mid + 1;
    }
    best.splice(lo, 0, item);
    if (best.length > keep) best.pop();
  }
  return best;
}
