/**
 * Conformance: `$toHashedIndexKey` (MongoDB 7.0+) gives mongod's hashed-index values. The pinned
 * values are mongod's own: the server's unit-test vectors for `BSONElementHasher::hash64` with seed
 * 0 (src/mongo/db/hasher_test.cpp) and the `$toHashedIndexKey` docs example. `$abs` and `$mod` take
 * the Int64 hash as mongod does, so a change stream can keep one hash partition of collections.
 */
import { describe, expect, it } from 'vitest';
import { Binary, BSONRegExp, Code, Long, MaxKey, MinKey, MongoServerError, ObjectId, type Document } from 'mongodb';
import { useTestDb } from '../../../test/support/mongo.js';
import { take } from './support.js';

const t = useTestDb('emu_hashing');

/** Evaluates `expr` on the server over one document `{v}` (`$documents` needs no collection). */
async function evaluate(v: unknown, expr: Document | string = { $toHashedIndexKey: '$v' }): Promise<unknown> {
  const [doc] = await t.db().aggregate([{ $documents: [{ v }] }, { $project: { _id: 0, r: expr } }], { promoteLongs: false }).toArray();
  return doc?.r;
}

// [label, value, mongod's hash]
const VECTORS: [string, unknown, string][] = [
  ['docs example string', 'string to hash', '763543691661428748'],
  ['string', 'abc', '8478485326885698097'],
  ['empty string', '', '2049396243249673340'],
  ['int 42', 42, '-944302157085130861'],
  ['double 42.123 (truncated)', 42.123, '-944302157085130861'],
  ['long 42', Long.fromNumber(42), '-944302157085130861'],
  ['int 0', 0, '4854801880128277513'],
  ['double NaN (as 0)', NaN, '4854801880128277513'],
  ['double -1.789', -1.789, '1140205862565771219'],
  ['int32 min', -2147483648, '6165898260261354870'],
  ['int32 max', 2147483647, '1143184177162245883'],
  ['int64 max', Long.MAX_VALUE, '921523596458303250'],
  ['double max (clamped to int64 max)', Number.MAX_VALUE, '921523596458303250'],
  ['int64 min', Long.MIN_VALUE, '4532067210535695462'],
  ['ObjectId', new ObjectId('010203040506070809101112'), '-5588663249627035708'],
  ['zero ObjectId', new ObjectId('000000000000000000000000'), '-4293118519463489418'],
  ['true', true, '6405873908747105701'],
  ['false', false, '6289544573401934092'],
  ['Date(0)', new Date(0), '-1178696894582842035'],
  ['object', { a: 'abc', b: Long.fromNumber(123) }, '4771603801758380216'],
  ['empty object', {}, '7980500913326740417'],
  ['array', ['bar', 'baz', 'qux'], '-2938911267422831539'],
  ['empty array', [], '8849948234993459283'],
  ['binary', new Binary(Buffer.from([0, 1, 2, 3, 4, 6]), 0), '7252465090394235301'],
  ['UUID binary', new Binary(Buffer.from([...Array(16).keys()]), 4), '6084661258071355978'],
  ['regex', new BSONRegExp('.*', 'i'), '7095855029187981886'],
  ['MinKey', new MinKey(), '7961148599568647290'],
  ['MaxKey', new MaxKey(), '5504842513779440750'],
  ['code', new Code('func f() { return 1; }'), '6861638109178014270'],
];

describe('$toHashedIndexKey', () => {
  it.each(VECTORS)('%s hashes to mongod’s value', async (_label, value, expected) => {
    const r = await evaluate(value);
    expect(r).toBeInstanceOf(Long);
    expect((r as Long).toString()).toBe(expected);
  });

  it('null and a missing field hash alike (missing is hashed as null)', async () => {
    const ofNull = (await evaluate(null)) as Long;
    const ofMissing = (await evaluate(1, { $toHashedIndexKey: '$noSuchField' })) as Long;
    expect(ofNull).toBeInstanceOf(Long);
    expect(ofMissing.toString()).toBe(ofNull.toString());
    expect(ofNull.toString()).not.toBe((await evaluate(0) as Long).toString());
  });

  it('$abs and $mod take the Int64 hash; $abs of the int64 minimum fails with 28680', async () => {
    // 8478485326885698097 is hash("abc"): the partition of a collection named "abc" among 4.
    expect(await evaluate('abc', { $mod: [{ $abs: { $toHashedIndexKey: '$v' } }, 4] })).toBe(1);
    // -944302157085130861 is hash(42): $abs makes it positive, exactly.
    expect(String(await evaluate(42, { $abs: { $toHashedIndexKey: '$v' } }))).toBe('944302157085130861');
    expect(await evaluate(Long.fromString('-944302157085130861'), { $mod: ['$v', 1000] })).toBe(-861);
    const err = await evaluate(Long.MIN_VALUE, { $abs: '$v' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoServerError);
    expect((err as MongoServerError).code).toBe(28680);
    const byZero = await evaluate(Long.MAX_VALUE, { $mod: ['$v', 0] }).catch((e: unknown) => e);
    expect((byZero as MongoServerError).code).toBe(16610);
  });

  it('partitions a database change stream by the hash of the collection name ($match with $expr)', async () => {
    const db = t.db();
    const names = ['abc', 'orders', 'forms', 'users', 'tickets', 'invoices', 'events', 'jobs'];
    const P = 4;
    // The expected partition of each name, computed by the server itself.
    const partitionOf = new Map<string, number>();
    for (const n of names) partitionOf.set(n, (await evaluate(n, { $mod: [{ $abs: { $toHashedIndexKey: '$v' } }, P] })) as number);
    expect(partitionOf.get('abc')).toBe(1);
    const p = 1;
    const mine = names.filter((n) => partitionOf.get(n) === p);
    const stream = db.watch([{ $match: { $expr: { $eq: [{ $mod: [{ $abs: { $toHashedIndexKey: '$ns.coll' } }, P] }, p] } } }]);
    try {
      await stream.tryNext(); // opens the cursor before the writes
      for (const n of names) await db.collection(n).insertOne({ n });
      const events = await take(stream, mine.length);
      expect(events.map((e) => e.ns.coll).sort()).toEqual([...mine].sort());
      // Nothing from the other partitions follows: a marker write in partition p arrives next.
      await db.collection('abc').insertOne({ marker: true });
      const [next] = await take(stream, 1);
      expect(next!.ns.coll).toBe('abc');
      expect(next!.fullDocument.marker).toBe(true);
    } finally {
      await stream.close();
    }
  });
});
