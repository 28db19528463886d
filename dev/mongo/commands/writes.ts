/**
 * The write core shared by `update`, `findAndModify` and upserts: matching, applying an update or
 * replacement to a copy, and building the upsert document from the query's equality fields.
 */
import type { Document } from 'mongodb';
import { ObjectId } from 'mongodb';
import type { Collection } from '../collection.js';
import { compareSortKeys, keyString, sortKeyOf, sortKeys } from '../compare.js';
import { applyUpdate, compileFilter, isOperatorUpdate } from '../engine.js';
import { CommandError } from '../errors.js';
import { isPlainObject } from '../bson.js';

/** First document matching `filter` in `sort` order (natural order without sort). */
export function findFirst(coll: Collection | undefined, filter: Document | undefined, sort?: Document, variables?: Document): Document | undefined {
  if (!coll) return undefined;
  if (!sort || Object.keys(sort).length === 0) return coll.find(filter, 1, variables)[0];
  // One pass keeping the best match so far (the first of equals, as a stable sort would). A
  // document that does not sort before the current best is skipped before the filter runs.
  const matcher = compileFilter(filter, variables);
  const keys = sortKeys(sort);
  let best: Document | undefined;
  let bestKey: unknown[] = [];
  for (const doc of coll.candidates(filter)) {
    const key = sortKeyOf(doc, keys);
    if (best && compareSortKeys(key, bestKey, keys) >= 0) continue;
    if (!matcher.test(doc)) continue;
    best = doc;
    bestKey = key;
  }
  return best;
}

export function validateUpdate(u: unknown): Document | Document[] {
  if (Array.isArray(u)) return u as Document[];
  if (!isPlainObject(u)) throw new CommandError(14, 'Update argument must be either an object or an array');
  return u;
}

/**
 * The new version of `doc` after an operator update, pipeline update or replacement. `variables`:
 * the command's `let`, for pipeline updates.
 */
export function updatedDocument(
  doc: Document,
  u: Document | Document[],
  arrayFilters: Document[] | undefined,
  query: Document | undefined,
  variables?: Document,
): { after: Document; kind: 'update' | 'replace' } {
  if (Array.isArray(u) || isOperatorUpdate(u)) {
    let after = applyUpdate(doc, u, { ...(arrayFilters ? { arrayFilters } : {}), ...(query ? { query } : {}), ...(variables ? { variables } : {}) });
    // A pipeline whose output drops _id (e.g. $replaceRoot) keeps the document's _id, as on mongod.
    if (Array.isArray(u) && !('_id' in after)) after = { _id: doc._id, ...after };
    if (!('_id' in after) || keyString(after._id) !== keyString(doc._id)) {
      throw new CommandError(66, "Performing an update on the path '_id' would modify the immutable field '_id'");
    }
    return { after: idFirst(after), kind: 'update' };
  }
  checkReplacement(u);
  if ('_id' in u && keyString(u._id) !== keyString(doc._id)) {
    throw new CommandError(
      66,
      `After applying the update, the (immutable) field '_id' was found to have been altered to _id: ${String(u._id)}`,
    );
  }
  const { _id: _ignored, ...rest } = u;
  return { after: { _id: doc._id, ...rest }, kind: 'replace' };
}

function checkReplacement(u: Document): void {
  for (const k of Object.keys(u)) {
    if (k.startsWith('$')) throw new CommandError(52, `The dollar ($) prefixed field '${k}' in '${k}' is not allowed in the context of an update's replacement document.`);
  }
}

function idFirst(doc: Document): Document {
  if (Object.keys(doc)[0] === '_id') return doc;
  const { _id, ...rest } = doc;
  return { _id, ...rest };
}

/** The document an upsert inserts: the query's equality fields, then the update applied with $setOnInsert. */
export function upsertDocument(query: Document | undefined, u: Document | Document[], arrayFilters?: Document[], variables?: Document): Document {
  const seed = seedFromQuery(query ?? {});
  let doc: Document;
  if (Array.isArray(u)) {
    doc = applyUpdate(seed, u, variables ? { variables } : {});
  } else if (isOperatorUpdate(u)) {
    doc = applyUpdate(seed, u, { inserting: true, ...(arrayFilters ? { arrayFilters } : {}) });
  } else {
    checkReplacement(u);
    doc = { ...u };
    if (!('_id' in doc) && '_id' in seed) doc = { _id: seed._id, ...doc };
  }
  if (!('_id' in doc)) doc = { _id: new ObjectId(), ...doc };
  return idFirst(doc);
}

function seedFromQuery(q: Document): Document {
  const out: Document = {};
  for (const [k, v] of Object.entries(q)) {
    if (k === '$and' && Array.isArray(v)) {
      for (const sub of v) if (isPlainObject(sub)) Object.assign(out, seedFromQuery(sub));
      continue;
    }
    if (k.startsWith('$')) continue;
    let value: unknown = v;
    if (isPlainObject(v) && Object.keys(v).some((x) => x.startsWith('$'))) {
      if (!('$eq' in v) || Object.keys(v).length !== 1) continue;
      value = v.$eq;
    }
    setPath(out, k, value);
  }
  return out;
}

function setPath(doc: Document, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur = doc;
  for (let i = 0; i < parts.length - 1; i++) {
    const p = parts[i]!;
    if (!isPlainObject(cur[p])) cur[p] = {};
    cur = cur[p] as Document;
  }
  cur[parts[parts.length - 1]!] = value;
}

/** A write error entry as it appears in `writeErrors`. */
export function writeErrorEntry(index: number, error: unknown): Document {
  if (error instanceof CommandError) {
    return { index, code: error.code, errmsg: error.message, ...error.extra };
  }
  return { index, code: 1, errmsg: error instanceof Error ? error.message : String(error) };
}

/** Collations other than the simple (binary) one are refused rather than silently ignored. */
export function rejectCollation(collation: unknown): void {
  if (collation === undefined || collation === null) return;
  if (isPlainObject(collation) && collation.locale === 'simple') return;
  throw new CommandError(115, 'collation is not supported by this server (the development emulator); only {locale: "simple"}');
}
