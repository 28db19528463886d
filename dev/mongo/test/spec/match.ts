/**
 * Matching of expected against actual values by the rules of the unified test format
 * (mongodb/specifications, source/unified-test-format/unified-test-format.md, "Evaluating Matches"):
 * root-level documents may hold extra fields, nested ones may not; arrays have the same length;
 * numbers compare by value across int/long/double; the `$$` operators ($$exists, $$type,
 * $$unsetOrMatches, $$matchesEntity, $$sessionLsid, $$lte, $$matchAsDocument, $$matchAsRoot)
 * are evaluated where they stand. A mismatch throws a `MatchError` naming the path.
 */
import { Binary, BSON, Decimal128, Double, Int32, Long, ObjectId, Timestamp, type Document } from 'mongodb';

const { EJSON } = BSON;

export class MatchError extends Error {}

/** What `$$matchesEntity` and `$$sessionLsid` look up. */
export interface MatchContext {
  entity(name: string): unknown;
  sessionLsid(name: string): Document;
}

const BSON_TYPES = new Set([
  'Binary', 'Code', 'DBRef', 'Decimal128', 'Double', 'Int32', 'Long', 'MaxKey', 'MinKey', 'ObjectId', 'ObjectID',
  'BSONRegExp', 'BSONSymbol', 'Timestamp', 'UUID',
]);

function bsonType(v: unknown): string | undefined {
  return v !== null && typeof v === 'object' ? ((v as { _bsontype?: string })._bsontype ?? undefined) : undefined;
}

/** Whether `v` is a document for matching purposes (plain objects and driver result objects). */
export function isDocument(v: unknown): v is Document {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  if (v instanceof Date || v instanceof RegExp || Buffer.isBuffer(v) || v instanceof Uint8Array) return false;
  const t = bsonType(v);
  return t === undefined || !BSON_TYPES.has(t);
}

function operatorOf(v: unknown): string | undefined {
  if (!isDocument(v)) return undefined;
  const keys = Object.keys(v);
  return keys.length === 1 && keys[0]!.startsWith('$$') ? keys[0] : undefined;
}

function asNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Long) return v.toNumber();
  if (v instanceof Int32 || v instanceof Double) return v.valueOf();
  return undefined;
}

/**
 * The `$type` names a value may have. The driver promotes int32 and in-range int64 values to JS
 * numbers, so an integral number may have been either (or a whole double) on the wire.
 */
function typeNames(v: unknown): string[] {
  if (v === null) return ['null'];
  if (v === undefined) return ['undefined'];
  if (typeof v === 'string') return ['string'];
  if (typeof v === 'boolean') return ['bool'];
  if (typeof v === 'number') return Number.isInteger(v) ? ['int', 'long', 'double'] : ['double'];
  if (typeof v === 'bigint' || v instanceof Long) return ['long'];
  if (v instanceof Int32) return ['int'];
  if (v instanceof Double) return ['double'];
  if (v instanceof Decimal128) return ['decimal'];
  if (v instanceof Date) return ['date'];
  if (v instanceof ObjectId) return ['objectId'];
  if (v instanceof Timestamp) return ['timestamp'];
  if (v instanceof Binary) return ['binData'];
  if (v instanceof RegExp || bsonType(v) === 'BSONRegExp') return ['regex'];
  if (Array.isArray(v)) return ['array'];
  const t = bsonType(v);
  if (t === 'MinKey') return ['minKey'];
  if (t === 'MaxKey') return ['maxKey'];
  if (t === 'Code') return ['javascript', 'javascriptWithScope'];
  return ['object'];
}

function show(v: unknown): string {
  try {
    return EJSON.stringify(v as Document, { relaxed: true });
  } catch {
    return String(v);
  }
}

function scalarEqual(expected: unknown, actual: unknown): boolean {
  const en = asNumber(expected);
  const an = asNumber(actual);
  if (en !== undefined || an !== undefined) return en !== undefined && an !== undefined && en === an;
  if (expected instanceof Decimal128 || actual instanceof Decimal128) return String(expected) === String(actual);
  if (expected instanceof Date && actual instanceof Date) return expected.getTime() === actual.getTime();
  if (expected === null || expected === undefined || typeof expected !== 'object') return expected === actual;
  return show(expected) === show(actual);
}

/**
 * Asserts that `actual` matches `expected`. `root`: extra fields allowed at this level. `present`:
 * whether the actual key existed (for $$exists and $$unsetOrMatches).
 */
export function match(expected: unknown, actual: unknown, ctx: MatchContext, path = '$', root = true, present = true): void {
  // The driver builds some command fields (e.g. `sort`) as Maps to keep their key order.
  if (actual instanceof Map) actual = Object.fromEntries(actual);
  const fail = (why: string): never => {
    throw new MatchError(`${path}: ${why} (expected ${show(expected)}, actual ${present ? show(actual) : '<unset>'})`);
  };
  const op = operatorOf(expected);
  if (op !== undefined) {
    const arg = (expected as Document)[op];
    switch (op) {
      case '$$exists':
        if (present !== arg) fail(arg ? 'field is missing' : 'field must not exist');
        return;
      case '$$type': {
        if (!present) fail('field is missing');
        const wanted = Array.isArray(arg) ? (arg as string[]) : [arg as string];
        const have = typeNames(actual);
        if (!wanted.some((w) => have.includes(w))) fail(`type ${have.join('/')} is not ${wanted.join('|')}`);
        return;
      }
      case '$$unsetOrMatches':
        if (!present) return;
        match(arg, actual, ctx, path, root, present);
        return;
      case '$$matchesEntity':
        match(ctx.entity(arg as string), actual, ctx, path, root, present);
        return;
      case '$$sessionLsid':
        if (!present) fail('field is missing');
        match(ctx.sessionLsid(arg as string), actual, ctx, path, false, present);
        return;
      case '$$lte': {
        const a = asNumber(actual);
        const e = asNumber(arg);
        if (!present || a === undefined || e === undefined || a > e) fail('not a number <= the limit');
        return;
      }
      case '$$matchAsDocument':
        if (typeof actual !== 'string') fail('not an Extended JSON string');
        match(arg, EJSON.parse(actual as string), ctx, path, false, present);
        return;
      case '$$matchAsRoot':
        match(arg, actual, ctx, path, true, present);
        return;
      default:
        throw new MatchError(`${path}: unsupported special operator ${op}`);
    }
  }
  if (!present) fail('field is missing');
  if (isDocument(expected)) {
    if (!isDocument(actual)) fail('not a document');
    const a = actual as Document;
    for (const [key, value] of Object.entries(expected)) {
      // Own fields and getters of driver result objects alike; a null value is present.
      const has = a[key] !== undefined;
      match(value, a[key], ctx, `${path}.${key}`, false, has);
    }
    if (!root) {
      const extra = Object.keys(a).filter((k) => a[k] !== undefined && !(k in expected));
      if (extra.length > 0) fail(`unexpected field(s) ${extra.join(', ')}`);
    }
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) fail('not an array');
    const a = actual as unknown[];
    if (a.length !== expected.length) fail(`array has ${a.length} elements, expected ${expected.length}`);
    expected.forEach((e, i) => match(e, a[i], ctx, `${path}[${i}]`, false, true));
    return;
  }
  if (!scalarEqual(expected, actual)) fail('values differ');
}

/** Exact comparison for `outcome` data: no operators, no extra fields, key order ignored. */
export function matchExactly(expected: unknown, actual: unknown, path = '$'): void {
  const fail = (why: string): never => {
    throw new MatchError(`${path}: ${why} (expected ${show(expected)}, actual ${show(actual)})`);
  };
  if (isDocument(expected)) {
    if (!isDocument(actual)) fail('not a document');
    const a = actual as Document;
    const ek = Object.keys(expected).sort();
    const ak = Object.keys(a).sort();
    if (ek.join('\u0000') !== ak.join('\u0000')) fail('fields differ');
    for (const k of ek) matchExactly(expected[k], a[k], `${path}.${k}`);
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) fail('arrays differ in length');
    expected.forEach((e, i) => matchExactly(e, (actual as unknown[])[i], `${path}[${i}]`));
    return;
  }
  if (!scalarEqual(expected, actual)) fail('values differ');
}
