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
 * Whether every operator of `update` is in `ops`, with a non-empty plain object of distinct
 * top-level fields (`isSimpleField`, no field under two operators), each accepted by `accept`.
 */
function distinctTopLevelFields(update: Document, ops: ReadonlySet<string>, accept: (op: string, field: string, value: unknown) => boolean): boolean {
  const seen = new Set<string>();
  for (const op of Object.keys(update)) {
    if (!ops.has(op)) return false;
    const spec = update[op];
    if (!isPlainObject(spec)) return false;
    const fields = Object.keys(spec);
    if (fields.length === 0) return false;
    for (const f of fields) {
      if (!isSimpleField(f) || seen.has(f) || !accept(op, f, spec[f])) return false;
      seen.add(f);
    }
  }
  return true;
}

/**
 * The upsert insert path for updates made only of `$setOnInsert`, `$set` and scalar `$addToSet`
 * on distinct top-level fields. Reproduces the general path exactly: `$setOnInsert` joins `$set`
 * where the first of the two appears, operators apply in the order they appear, an existing field
 * keeps its position and a new one is appended; values are deep-copied.
 */
export function insertWithSimpleUpdate(seed: Document, update: Document): Document | undefined {
  if (!distinctTopLevelFields(update, SIMPLE_OPS, (op, f, v) => op !== '$addToSet' || (!(f in seed) && isSimpleScalar(v)))) return undefined;
  const order: string[] = [];
  for (const op of Object.keys(update)) {
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

/**
 * A fast matcher's answer for one document: true/false, or undefined when the document holds a
 * value the shortcut does not decide (then the caller asks the general, mingo-based matcher).
 */
export type FastTest = (doc: Document) => boolean | undefined;

const RANGE_OPS = new Set(['$lt', '$lte', '$gt', '$gte']);

/** Comparison operand the shortcut orders itself: a Date or a finite JS number (same-type only, as mongod's type bracketing). */
function rangeTest(op: string, operand: unknown): ((v: unknown) => boolean | undefined) | undefined {
  let num: number;
  let isDate: boolean;
  if (operand instanceof Date) {
    num = operand.getTime();
    isDate = true;
    if (Number.isNaN(num)) return undefined;
  } else if (typeof operand === 'number' && Number.isFinite(operand)) {
    num = operand;
    isDate = false;
  } else {
    return undefined;
  }
  const holds = op === '$lt' ? (x: number) => x < num : op === '$lte' ? (x: number) => x <= num : op === '$gt' ? (x: number) => x > num : (x: number) => x >= num;
  return (v) => {
    if (isDate) {
      if (v instanceof Date) {
        const t = v.getTime();
        return Number.isNaN(t) ? undefined : holds(t);
      }
    } else if (typeof v === 'number') {
      // NaN sorts below every number in BSON order: left to the general path.
      return Number.isNaN(v) ? undefined : holds(v);
    }
    // Other BSON numeric classes (Long, Decimal128 left unpromoted) compare across types: general path.
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date) && !isPlainObject(v)) return undefined;
    return false;
  };
}

/** Applies `test` to each value at `path`, descending one array level like a query path; any match wins. */
function anyValue(doc: Document, path: string, dotted: boolean, test: (v: unknown) => boolean | undefined): boolean | undefined {
  const values = dotted ? valuesAtPath(doc, path) : [doc[path]];
  let unsure = false;
  for (const v of values) {
    if (Array.isArray(v)) {
      for (const el of v) {
        if (Array.isArray(el)) return undefined; // nested arrays: general path
        const r = test(el);
        if (r === true) return true;
        if (r === undefined) unsure = true;
      }
      continue;
    }
    const r = test(v);
    if (r === true) return true;
    if (r === undefined) unsure = true;
  }
  return unsure ? undefined : false;
}

/** One `{path: condition}` pair as a fast test, or undefined when the shortcut does not cover it. */
function fieldTest(path: string, cond: unknown): FastTest | undefined {
  if (!isPlainPath(path)) return undefined;
  const dotted = path.includes('.');
  if (isSimpleScalar(cond)) {
    const key = keyString(cond);
    return (doc) => hasValue(doc, path, key);
  }
  if (cond === null) {
    // `{f: null}` matches a missing or null field; arrays (which may hold null) go to the general path.
    if (dotted) return undefined;
    return (doc) => {
      const v = doc[path];
      if (v === undefined || v === null) return true;
      return Array.isArray(v) ? undefined : false;
    };
  }
  if (!isPlainObject(cond)) return undefined;
  const ops = Object.keys(cond);
  if (ops.length === 0) return undefined;
  const tests: FastTest[] = [];
  for (const op of ops) {
    const operand = cond[op];
    if (RANGE_OPS.has(op)) {
      const t = rangeTest(op, operand);
      if (!t) return undefined;
      tests.push((doc) => anyValue(doc, path, dotted, t));
    } else if (op === '$eq' && isSimpleScalar(operand)) {
      const key = keyString(operand);
      tests.push((doc) => hasValue(doc, path, key));
    } else if ((op === '$in' || op === '$nin') && Array.isArray(operand) && operand.length > 0 && operand.every(isSimpleScalar)) {
      const keys = new Set(operand.map(keyString));
      const hit = (doc: Document) => anyValue(doc, path, dotted, (v) => keys.has(keyString(v)));
      tests.push(op === '$in' ? hit : (doc) => {
        const r = hit(doc);
        return r === undefined ? undefined : !r;
      });
    } else {
      return undefined;
    }
  }
  return tests.length === 1 ? tests[0] : (doc) => all(tests, doc);
}

function all(tests: FastTest[], doc: Document): boolean | undefined {
  let unsure = false;
  for (const t of tests) {
    const r = t(doc);
    if (r === false) return false;
    if (r === undefined) unsure = true;
  }
  return unsure ? undefined : true;
}

/**
 * A fast test for the filter shapes the job queue sends (claims, fences, ordering checks):
 * `$and`/`$or` of field conditions made of implicit equality on scalars, `null`, `$eq`, `$in`/`$nin`
 * of scalars, and `$lt`/`$lte`/`$gt`/`$gte` on Dates and finite numbers. Undefined for any other
 * shape; per document it answers undefined whenever a value falls outside what it decides exactly.
 */
export function fastFilter(filter: Document): FastTest | undefined {
  const tests: FastTest[] = [];
  for (const key of Object.keys(filter)) {
    const cond = filter[key];
    if (key === '$and' || key === '$or') {
      if (!Array.isArray(cond) || cond.length === 0) return undefined;
      const branches: FastTest[] = [];
      for (const sub of cond) {
        if (!isPlainObject(sub) || Object.keys(sub).length === 0) return undefined;
        const t = fastFilter(sub);
        if (!t) return undefined;
        branches.push(t);
      }
      if (key === '$and') {
        tests.push((doc) => all(branches, doc));
      } else {
        tests.push((doc) => {
          let unsure = false;
          for (const b of branches) {
            const r = b(doc);
            if (r === true) return true;
            if (r === undefined) unsure = true;
          }
          return unsure ? undefined : false;
        });
      }
      continue;
    }
    if (key.startsWith('$')) return undefined;
    const t = fieldTest(key, cond);
    if (!t) return undefined;
    tests.push(t);
  }
  if (tests.length === 0) return undefined;
  return tests.length === 1 ? tests[0] : (doc) => all(tests, doc);
}

type ProjectionTree = { [field: string]: true | ProjectionTree };

/**
 * An inclusion projection of plain paths (`{a: 1, 'b.c': 1, _id: 0}`) as a function, or undefined
 * for anything else (exclusions, operators, `$`, path collisions). Keeps the document's own field
 * order at every level, as mongod does. Per document it answers undefined when a projected path
 * crosses an array (left to the general path).
 */
export function inclusionProjection(projection: Document): ((doc: Document) => Document | undefined) | undefined {
  const tree: ProjectionTree = {};
  let withId = true;
  for (const path of Object.keys(projection)) {
    const v = projection[path];
    if (path === '_id' && (v === 0 || v === false)) {
      withId = false;
      continue;
    }
    if (v !== 1 && v !== true) return undefined;
    if (!isPlainPath(path)) return undefined;
    const parts = path.split('.');
    let node = tree;
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      const last = i === parts.length - 1;
      const cur = node[p];
      if (last) {
        if (cur !== undefined) return undefined; // collision (a and a.b)
        node[p] = true;
      } else {
        if (cur === true) return undefined;
        node = (node[p] ??= {}) as ProjectionTree;
      }
    }
  }
  // `{_id: 0}` alone is an exclusion projection: not this shortcut.
  if (Object.keys(tree).length === 0) return undefined;
  if (withId && tree._id === undefined) tree._id = true;
  if (!withId && tree._id !== undefined) return undefined;
  return (doc) => projectInto(doc, tree);
}

function projectInto(doc: Document, tree: ProjectionTree): Document | undefined {
  const out: Document = {};
  for (const k of Object.keys(doc)) {
    const sub = tree[k];
    if (sub === undefined) continue;
    const v = doc[k];
    if (sub === true) {
      out[k] = v;
      continue;
    }
    if (Array.isArray(v)) return undefined;
    if (!isPlainObject(v)) continue; // a subfield of a scalar: nothing to include
    const inner = projectInto(v, sub);
    if (inner === undefined) return undefined;
    out[k] = inner;
  }
  return out;
}

const FIELD_OPS = new Set(['$set', '$unset', '$inc']);

/**
 * `$set`, `$unset` and `$inc` on distinct top-level fields, applied to a copy of `doc` exactly as
 * the general path does (operators in the order they appear, an existing field keeps its
 * position, a new one is appended; `$inc` of a missing field sets it). Undefined for any other
 * update, and when an `$inc` meets a value that is not a JS number (the general path reports
 * the error mongod gives).
 */
export function simpleFieldUpdate(doc: Document, update: Document): Document | undefined {
  const finite = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  if (!distinctTopLevelFields(update, FIELD_OPS, (op, f, v) => op !== '$inc' || (finite(v) && (doc[f] === undefined || finite(doc[f]))))) return undefined;
  const out: Document = { ...doc };
  for (const op of Object.keys(update)) {
    const spec = update[op] as Document;
    for (const f of Object.keys(spec)) {
      if (op === '$set') out[f] = cloneDoc(spec[f]);
      else if (op === '$unset') delete out[f];
      else out[f] = ((out[f] as number | undefined) ?? 0) + (spec[f] as number);
    }
  }
  return out;
}
