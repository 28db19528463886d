/**
 * Aggregation expression operators the emulator evaluates itself instead of mingo's versions:
 *
 * - `$toHashedIndexKey` (MongoDB 7.0+): mongod's hashed-index hash as a BSON Long (mingo's own
 *   version uses a different hash, so a partition computed with it would not match mongod's).
 * - `$abs` and `$mod` also accept Int64 values beyond 2^53 (kept as `Long`, see bson.ts), which
 *   mingo's versions refuse, so `{$mod: [{$abs: {$toHashedIndexKey: '$ns.coll'}}, P]}` works as on
 *   mongod. Arithmetic on Longs is exact (BigInt). Results that fit 53 bits come back as JS numbers,
 *   the emulator's representation of such Int64 values, so they compare equal to plain numbers.
 *
 * Errors are mongod's: 28680 (`$abs` of the int64 minimum), 28765 (`$abs` of a non-number), 16610
 * (`$mod` by zero), 16611 (`$mod` of non-numbers).
 */
import { evalExpr } from 'mingo/core';
import { $abs as mingoAbs, $mod as mingoMod } from 'mingo/operators/expression/arithmetic';
import { Long } from 'mongodb';
import { CommandError } from './errors.js';
import { hashedIndexKey, isLong } from './hashing.js';

type Operator = (obj: object, expr: unknown, options: object) => unknown;

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const INT64_MIN = -(2n ** 63n);

function toBig(v: Long): bigint {
  return BigInt.asIntN(64, BigInt(v.toString()));
}

/** An Int64 result: a JS number when it fits 53 bits (as stored Int64 values are), else a Long. */
function int64Result(b: bigint): number | Long {
  return b >= -SAFE && b <= SAFE ? Number(b) : Long.fromBigInt(b);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'double';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Date) return 'date';
  const tag = (v as { _bsontype?: string })._bsontype;
  return tag ? tag.toLowerCase() : 'object';
}

const $toHashedIndexKey: Operator = (obj, expr, options) => hashedIndexKey(evalExpr(obj, expr, options as never));

const $abs: Operator = (obj, expr, options) => {
  const n = evalExpr(obj, expr, options as never);
  if (isLong(n)) {
    const b = toBig(n);
    if (b === INT64_MIN) throw new CommandError(28680, "can't take $abs of long long min");
    return int64Result(b < 0n ? -b : b);
  }
  if (n !== null && n !== undefined && typeof n !== 'number') {
    throw new CommandError(28765, `$abs only supports numeric types, not ${typeName(n)}`);
  }
  return (mingoAbs as Operator)(obj, expr, options);
};

const $mod: Operator = (obj, expr, options) => {
  const args = evalExpr(obj, expr, options as never);
  if (!Array.isArray(args) || !args.some(isLong)) return (mingoMod as Operator)(obj, expr, options);
  if (args.length !== 2) throw new CommandError(16020, `Expression $mod takes exactly 2 arguments. ${args.length} were passed in.`);
  const [a, b] = args as unknown[];
  if (a === null || a === undefined || b === null || b === undefined) return null;
  for (const v of [a, b]) {
    if (!isLong(v) && typeof v !== 'number') throw new CommandError(16611, `$mod only supports numeric types, not ${typeName(a)} and ${typeName(b)}`);
  }
  const integral = (v: unknown) => isLong(v) || Number.isInteger(v);
  if (!integral(a) || !integral(b)) {
    // A double operand makes mongod compute in doubles (fmod).
    const x = isLong(a) ? Number(toBig(a)) : (a as number);
    const y = isLong(b) ? Number(toBig(b)) : (b as number);
    if (y === 0) throw new CommandError(16610, "can't $mod by zero");
    return x % y;
  }
  const x = isLong(a) ? toBig(a) : BigInt(a as number);
  const y = isLong(b) ? toBig(b) : BigInt(b as number);
  if (y === 0n) throw new CommandError(16610, "can't $mod by zero");
  // BigInt % truncates toward zero like C++ %, so the sign follows the dividend as on mongod.
  return int64Result(x % y);
};

/** Expression operators to register over mingo's (see engine.ts). */
export const EMULATOR_EXPRESSION_OPERATORS: Record<string, Operator> = { $toHashedIndexKey, $abs, $mod };
