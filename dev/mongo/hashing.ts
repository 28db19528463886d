/**
 * mongod's hashed-index hash (`BSONElementHasher::hash64`, src/mongo/db/hasher.cpp), the function
 * behind hashed indexes, hashed sharding and the `$toHashedIndexKey` expression (MongoDB 7.0+).
 *
 * The hash is MD5 over: the seed (int32 little-endian, 0 for indexes and `$toHashedIndexKey`), then
 * for the value its canonical type (int32 LE, from `canonicalizeBSONType`) followed by
 *  - numbers (int, long, double): the value as int64 LE after `safeNumberLongForHash` (doubles are
 *    truncated toward zero, NaN is 0, beyond the int64 range clamps, and the double 2^63 is -2^63);
 *  - objects and arrays: every element as (canonical type, field name with its NUL, value), then
 *    the terminating EOO element (canonical type 0 only: an EOO has no field name bytes);
 *  - anything else: the element's value bytes as BSON stores them (a string is its int32 length,
 *    UTF-8 bytes and NUL; a Date 8 bytes; an ObjectId 12; a boolean 1; null, undefined, MinKey and
 *    MaxKey none).
 * The result is the first 8 digest bytes read as a little-endian int64. Known values are pinned in
 * `dev/mongo/test/hashing.test.ts` (server's `hasher_test.cpp` and the `$toHashedIndexKey` docs page).
 */
import { createHash, type Hash } from 'node:crypto';
import { BSON, Long } from 'mongodb';
import { CommandError } from './errors.js';

const TWO_63 = 2 ** 63;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

type Tagged = { _bsontype?: string };

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(n, 0);
  return b;
}

function int64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(n, 0);
  return b;
}

/** `BSONElement::safeNumberLongForHash` for a double. */
function doubleForHash(d: number): bigint {
  if (Number.isNaN(d)) return 0n;
  if (d === TWO_63) return INT64_MIN; // the cast's historical wrap-around, kept by mongod on purpose
  if (d >= TWO_63) return INT64_MAX;
  if (d < -TWO_63) return INT64_MIN;
  return BigInt(Math.trunc(d));
}

/** The BSON bytes of one element `{"": value}` minus the document framing: [type, value bytes]. */
function elementValue(value: unknown): { type: number; bytes: Uint8Array } {
  const doc = BSON.serialize({ '': value });
  // int32 length, type byte, "" (one NUL), value..., trailing NUL of the document.
  return { type: doc[4]!, bytes: doc.subarray(6, doc.length - 1) };
}

/** `canonicalizeBSONType` (bsontypes.h) by BSON type byte. */
function canonicalType(type: number): number {
  switch (type) {
    case 0xff:
      return -1; // MinKey
    case 0x7f:
      return 127; // MaxKey
    case 0x06:
      return 0; // undefined
    case 0x0a:
      return 5; // null
    case 0x01:
    case 0x10:
    case 0x12:
    case 0x13:
      return 10; // double, int, long, decimal
    case 0x02:
    case 0x0e:
      return 15; // string, symbol
    case 0x03:
      return 20;
    case 0x04:
      return 25;
    case 0x05:
      return 30; // binData
    case 0x07:
      return 35; // ObjectId
    case 0x08:
      return 40; // bool
    case 0x09:
      return 45; // date
    case 0x11:
      return 47; // timestamp
    case 0x0b:
      return 50; // regex
    case 0x0c:
      return 55; // DBPointer
    case 0x0d:
      return 60; // code
    case 0x0f:
      return 65; // code with scope
    default:
      throw new CommandError(2, `cannot hash a value of BSON type ${type}`);
  }
}

function hashValue(h: Hash, value: unknown, fieldName: string | undefined): void {
  if (value === undefined && fieldName === undefined) value = null;
  const { type, bytes } = elementValue(value);
  h.update(int32(canonicalType(type)));
  if (fieldName !== undefined) h.update(Buffer.from(fieldName + '\0', 'utf8'));
  switch (type) {
    case 0x01:
    case 0x10:
      h.update(int64(doubleForHash(value instanceof Object ? Number((value as { valueOf(): number }).valueOf()) : (value as number))));
      return;
    case 0x12:
      h.update(int64(BigInt.asIntN(64, BigInt((value as Long).toString()))));
      return;
    case 0x13:
      // safeNumberLong of a Decimal128 rounds with the decimal library's rules; not reproduced here.
      throw new CommandError(115, '$toHashedIndexKey of a Decimal128 is not supported by the development emulator');
    case 0x03:
    case 0x04: {
      const entries: [string, unknown][] = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value as object);
      for (const [k, v] of entries) hashValue(h, v === undefined ? null : v, k);
      h.update(int32(0)); // EOO: canonical type 0; its field name size is 0, so no name bytes
      return;
    }
    case 0x0f:
      throw new CommandError(115, '$toHashedIndexKey of code with scope is not supported by the development emulator');
    default:
      h.update(bytes);
  }
}

/**
 * `BSONElementHasher::hash64(value, seed)`: the signed 64-bit hash mongod stores in a hashed index
 * for `value`. A missing value (`undefined`) hashes as null, as `$toHashedIndexKey` does.
 * Throws CommandError 115 for Decimal128 and code-with-scope values (not reproduced).
 */
export function hashedIndexKey(value: unknown, seed = 0): Long {
  const h = createHash('md5');
  h.update(int32(seed));
  hashValue(h, value, undefined);
  const digest = h.digest();
  return Long.fromBigInt(digest.readBigInt64LE(0));
}

/** Whether a value is a BSON Long (the driver's class); `_bsontype` also covers other copies of bson. */
export function isLong(v: unknown): v is Long {
  return v instanceof Long || (v as Tagged | null)?._bsontype === 'Long';
}
