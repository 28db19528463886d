import { BSON } from 'mongodb';

/**
 * The one BSON → JSON mapping, for webhook bodies and every JSON body the routes return (README,
 * "BSON in webhook bodies and responses"). Values come from the driver's default deserialization
 * (int32 and whole doubles as numbers, int64 within ±2^53 as numbers, everything else as `bson`
 * classes); each class is turned into plain JSON that a receiver in any language reads without an
 * Extended JSON parser, while keeping the value exact:
 *
 * | BSON                      | JSON                                                        |
 * |---------------------------|-------------------------------------------------------------|
 * | double, int32             | number; NaN / Infinity / -Infinity as the strings "NaN" …   |
 * | int64 (Long, bigint)      | number within ±(2^53−1), else a string of its exact digits  |
 * | Decimal128                | string, exact (`"1.10"`)                                    |
 * | ObjectId                  | 24-hex string                                               |
 * | date                      | ISO 8601 string in UTC; an invalid date as null             |
 * | binary subtype 4 (16 B)   | UUID string (`"0b1d2c3e-…"`)                                |
 * | other binary              | `{ "base64": "…", "subType": "00" }` (subtype as 2 hex digits) |
 * | regular expression        | `{ "pattern": "…", "flags": "…" }`                           |
 * | timestamp                 | `{ "t": seconds, "i": increment }`                          |
 * | MinKey / MaxKey           | `{ "$minKey": 1 }` / `{ "$maxKey": 1 }` (as in Extended JSON) |
 * | JavaScript code           | `{ "code": "…" }`, plus `"scope"` for code with scope        |
 * | DBRef                     | `{ "$ref": …, "$id": …, "$db"?: … }` (MongoDB's DBRef fields)  |
 * | symbol                    | string                                                      |
 * | undefined (deprecated)    | null                                                        |
 * | document, array           | object (field order kept), array, mapped element by element |
 *
 * Type information that JSON cannot carry (int32 vs double, which number was an int64) is not kept;
 * a receiver that needs it can ask for the canonical Extended JSON of the submission instead.
 */
export function toJsonValue(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'bigint':
      return int64(value);
    case 'function':
    case 'symbol':
      return null;
    default:
      break;
  }
  if (Array.isArray(value)) return value.map(toJsonValue);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof RegExp) return { pattern: value.source, flags: value.flags };
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return binary(new BSON.Binary(value, 0));
  const type = (value as { _bsontype?: unknown })._bsontype;
  if (typeof type === 'string') return bsonClass(type, value);
  // Anything that says how it serializes (a Secret prints as "[redacted]") keeps saying so.
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return toJsonValue(toJSON.call(value));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v !== undefined) out[k] = toJsonValue(v);
  }
  return out;
}

/** `JSON.stringify` of `toJsonValue(value)`: the text a webhook or a route sends. */
export function stringifyJson(value: unknown, space?: number): string {
  return JSON.stringify(toJsonValue(value), null, space);
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function int64(v: bigint): number | string {
  return v <= SAFE && v >= -SAFE ? Number(v) : v.toString();
}

function binary(b: InstanceType<typeof BSON.Binary>): unknown {
  if (b.sub_type === BSON.Binary.SUBTYPE_UUID && b.length() === 16) return b.toUUID().toHexString(true);
  return { base64: b.toString('base64'), subType: b.sub_type.toString(16).padStart(2, '0') };
}

function bsonClass(type: string, value: unknown): unknown {
  switch (type) {
    case 'ObjectId':
      return (value as InstanceType<typeof BSON.ObjectId>).toHexString();
    case 'Long':
      return int64(BigInt((value as InstanceType<typeof BSON.Long>).toString()));
    case 'Int32':
    case 'Double':
      return toJsonValue((value as InstanceType<typeof BSON.Double>).valueOf());
    case 'Decimal128':
      return (value as InstanceType<typeof BSON.Decimal128>).toString();
    case 'Binary':
      return binary(value as InstanceType<typeof BSON.Binary>);
    case 'BSONRegExp': {
      const r = value as InstanceType<typeof BSON.BSONRegExp>;
      return { pattern: r.pattern, flags: r.options };
    }
    case 'Timestamp': {
      const t = value as InstanceType<typeof BSON.Timestamp>;
      return { t: t.t, i: t.i };
    }
    case 'MinKey':
      return { $minKey: 1 };
    case 'MaxKey':
      return { $maxKey: 1 };
    case 'Code': {
      const c = value as InstanceType<typeof BSON.Code>;
      return c.scope ? { code: c.code, scope: toJsonValue(c.scope) } : { code: c.code };
    }
    case 'DBRef': {
      const d = value as InstanceType<typeof BSON.DBRef>;
      return { $ref: d.collection, $id: toJsonValue(d.oid), ...(d.db ? { $db: d.db } : {}), ...(toJsonValue(d.fields) as object) };
    }
    case 'BSONSymbol':
      return (value as InstanceType<typeof BSON.BSONSymbol>).valueOf();
    default:
      // A bson class this table does not know yet: its relaxed Extended JSON, never `{}`.
      return JSON.parse(BSON.EJSON.stringify(value as never, { relaxed: true })) as unknown;
  }
}
