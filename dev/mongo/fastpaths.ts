/**
 * Shortcuts for the hottest shapes of filters and updates, each taken only when its result is
 * provably the one the general (mingo-based) path gives; anything else returns undefined and the
 * caller falls back. They exist because compiling a mingo Query or updater costs far more than
 * applying it to one document, and the job queue sends hundreds of such one-document writes.
 */
import { ObjectId, type Document } from 'mongodb';
import { cloneDoc, isPlainObject } from './bson.js';
import { keyString, valuesAtPath } from './compare.js';

/** Values whose canonical key string is equal exactly when mongod's `$eq` says they are equal. */
function isSimpleScalar(v: unknown): boolean {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(v);
  }
  return v instanceof Date || v instanceof ObjectId;
}

/** A dotted path whose parts are plain field names (no `$`, no array indexes, none empty). */
function isPlainPath(path: string): boolean {
  if (path.length === 0 || path.startsWith('$')) return false;
  if (!path.includes('.')) return true;
  return path.split('.').every((p) => p.length > 0 && !p.startsWith('$') && !/^\d+$/.test(p));
}

/**
 * A matcher for `{path: scalar, ...}` (implicit equality on strings, finite numbers, booleans, Dates
 * and ObjectIds): a document matches when, for every path, one of the values reached at the path
 * (array elements included, as a query path descends) equals the scalar.
 */
export function equalityMatcher(filter: Document): ((doc: Document) => boolean) | undefined {
  const conds: [path: string, key: string][] = [];
  for (const path of Object.keys(filter)) {
    const v = filter[path];
    if (!isPlainPath(path) || !isSimpleScalar(v)) return undefined;
    conds.push([path, keyString(v)]);
  }
  return (doc) => conds.every(([path, key]) => hasValue(doc, path, key));
}

function hasValue(doc: Document, path: string, key: string): boolean {
  const values = path.includes('.') ? valuesAtPath(doc, path) : [doc[path]];
  for (const v of values) {
    if (Array.isArray(v)) {
      for (const el of v) if (keyString(el) === key) return true;
    } else if (keyString(v) === key) {
      return true;
    }
  }
  return false;
}

const SIMPLE_OPS = new Set(['$set', '$setOnInsert', '$addToSet']);

/** A top-level field name an update may set directly (no dots, no `$`, not `_id`). */
const isSimpleField = (f: string) => f.length > 0 && f !== '_id' && !f.includes('.') && !f.startsWith('$');

/**
 * The upsert insert path for updates made only of `$setOnInsert`, `$set` and scalar `$addToSet`
 * on distinct top-level fields. Reproduces the general path exactly: `$setOnInsert` joins `$set`
 * where the first of the two appears, operators apply in the order they appear, an existing field
 * keeps its position and a new one is appended; values are deep-copied.
 */
export function insertWithSimpleUpdate(seed: Document, update: Document): Document | undefined {
  const order: string[] = [];
  const seen = new Set<string>();
  for (const op of Object.keys(update)) {
    if (!SIMPLE_OPS.has(op)) return undefined;
    const spec = update[op];
    if (!isPlainObject(spec)) return undefined;
    const fields = Object.keys(spec);
    if (fields.length === 0) return undefined;
    for (const f of fields) {
      if (!isSimpleField(f) || seen.has(f)) return undefined;
      seen.add(f);
      if (op === '$addToSet' && (f in seed || !isSimpleScalar(spec[f]))) return undefined;
    }
    const slot = op === '$setOnInsert' ? '$set' : op;
    if (!order.includes(slot)) order.push(slot);
  }
  const out: Document = cloneDoc(seed);
  for (const slot of order) {
    if (slot === '$addToSet') {
      for (const [f, v] of Object.entries(update.$addToSet as Document)) out[f] = [v];
      continue;
    }
    // Same merge order as the general path: the operator that appears first contributes first.
    for (const op of Object.keys(update)) {
      if (op !== '$set' && op !== '$setOnInsert') continue;
      for (const [f, v] of Object.entries(update[op] as Document)) out[f] = cloneDoc(v);
    }
  }
  return out;
}

/**
 * True when an operator update on an existing document changes nothing: only `$setOnInsert`
 * (ignored off the insert path) and scalar `$addToSet` on top-level fields already holding an
 * array that contains the value. The caller can then keep the stored document as it is.
 */
export function isNoopOnExisting(doc: Document, update: Document): boolean {
  for (const op of Object.keys(update)) {
    const spec = update[op];
    if (!isPlainObject(spec)) return false;
    if (op === '$setOnInsert') continue;
    if (op !== '$addToSet') return false;
    for (const [f, v] of Object.entries(spec)) {
      if (!isSimpleField(f) || !isSimpleScalar(v)) return false;
      const cur = doc[f];
      if (!Array.isArray(cur)) return false;
      const key = keyString(v);
      if (!cur.some((el) => keyString(el) === key)) return false;
    }
  }
  return true;
}
