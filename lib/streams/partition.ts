import { createHash } from 'node:crypto';
import type { Db, Document } from 'mongodb';
import { COLLECTIONS, LEGACY_SHARED_COLLECTIONS } from '../data/mongo.js';
import { AppError } from '../platform/errors.js';

/**
 * Partitions of the `database` stream layout: the platform database is watched by P change streams
 * (`partition:{p}/{P}`), each serving the submission collections whose name hashes to it, plus the
 * `workflows` collection in every partition (the registry follows the stream).
 *
 * The hash is mongod's hashed-index hash of the collection name (`$toHashedIndexKey`, MongoDB 7.0+;
 * `BSONElementHasher::hash64` in src/mongo/db/hasher.cpp): MD5 over the seed 0 (int32 LE), the
 * canonical type of a string (15, int32 LE) and the string as BSON stores it (int32 LE byte length
 * including the NUL, the UTF-8 bytes, NUL); the first 8 digest bytes read as a little-endian int64.
 * `partitionOf` computes it here, and the server computes it in the stream's `$match`, so both always
 * agree on which partition serves a collection (checked against the server in test/drain/partitions).
 */

/** The canonical BSON type of strings in mongod's `canonicalizeBSONType`. */
const STRING_CANONICAL_TYPE = 15;

/** mongod's `$toHashedIndexKey` of a string, as a signed 64-bit integer. */
export function hashedIndexKey(value: string): bigint {
  const utf8 = Buffer.from(value, 'utf8');
  const head = Buffer.alloc(12);
  head.writeInt32LE(0, 0); // seed
  head.writeInt32LE(STRING_CANONICAL_TYPE, 4);
  head.writeInt32LE(utf8.length + 1, 8);
  const digest = createHash('md5').update(head).update(utf8).update(Buffer.from([0])).digest();
  return digest.readBigInt64LE(0);
}

/**
 * The partition (0 … P−1) that serves a collection: the hash modulo P, made non-negative. The
 * server-side `$match` accepts the two values `$mod` can give for it (p, and p − P for a negative
 * hash: `$mod` keeps the dividend's sign), so no `$abs` is needed (it overflows on the minimum int64).
 */
export function partitionOf(collection: string, partitions: number): number {
  if (partitions <= 1) return 0;
  const m = Number(hashedIndexKey(collection) % BigInt(partitions));
  return m < 0 ? m + partitions : m;
}

/** Whether a collection holds submissions (`submissions_{orgId}` or a legacy shared collection). */
export function isSubmissionCollection(collection: string): boolean {
  return collection.startsWith('submissions_') || (LEGACY_SHARED_COLLECTIONS as readonly string[]).includes(collection);
}

/**
 * The server-side pipeline of partition p of P. It depends only on (p, P) and fixed namespaces,
 * never on the workflows: a changed `$match` can make a saved token unresumable on mongod, so the
 * per-workflow filtering happens in the drain. Only named namespaces match, so the product's own
 * collections (jobs, checkpoints, runs, the timeline …) never reach the stream and it never reads
 * its own writes. `workflows` changes (deletes included: a deleted workflow leaves the registry)
 * reach every partition; a submission collection's inserts, updates, replaces, drops and renames
 * reach the one partition that serves it; `dropDatabase` and `invalidate` reach all.
 */
export function partitionPipeline(p: number, partitions: number): Document[] {
  const share: Document[] =
    partitions > 1
      ? [{ $expr: { $in: [{ $mod: [{ $toHashedIndexKey: '$ns.coll' }, partitions] }, [p, p - partitions]] } }]
      : [];
  return [
    {
      $match: {
        $or: [
          { operationType: { $in: ['dropDatabase', 'invalidate'] } },
          { 'ns.coll': COLLECTIONS.workflows, operationType: { $in: ['insert', 'update', 'replace', 'delete', 'drop', 'rename'] } },
          {
            $and: [
              { operationType: { $in: ['insert', 'update', 'replace', 'drop', 'rename'] } },
              { $or: [{ 'ns.coll': { $regex: '^submissions_' } }, { 'ns.coll': { $in: [...LEGACY_SHARED_COLLECTIONS] } }] },
              ...share,
            ],
          },
        ],
      },
    },
  ];
}

/** The first server version with `$toHashedIndexKey`. */
export const HASHED_KEY_MIN_VERSION = [7, 0] as const;

const versions = new WeakMap<Db, Promise<number[]>>();

/** The server version as numbers (`buildInfo`), asked once per Db handle per warm instance. */
export function serverVersion(db: Db): Promise<number[]> {
  let pending = versions.get(db);
  if (!pending) {
    pending = db
      .command({ buildInfo: 1 })
      .then((info) => String(info.version ?? '0').split(/[.-]/).slice(0, 3).map((n) => Number.parseInt(n, 10) || 0));
    pending.catch(() => versions.delete(db));
    versions.set(db, pending);
  }
  return pending;
}

/**
 * Set the version `serverVersion` reports for one Db handle, instead of asking the server: the port
 * through which tests try a server older than the emulator can be (e.g. 6.0 for the P > 1 refusal).
 */
export function primeServerVersion(db: Db, version: string): void {
  versions.set(db, Promise.resolve(version.split(/[.-]/).slice(0, 3).map((n) => Number.parseInt(n, 10) || 0)));
}

/**
 * Refuse P > 1 on a server without `$toHashedIndexKey` (before 7.0), with an error naming the setting
 * and the version. P = 1 needs no hash and runs on any server with change streams.
 */
export async function assertPartitionsSupported(db: Db, partitions: number): Promise<void> {
  if (partitions <= 1) return;
  const version = await serverVersion(db);
  const [major = 0, minor = 0] = version;
  const [needMajor, needMinor] = HASHED_KEY_MIN_VERSION;
  if (major < needMajor || (major === needMajor && minor < needMinor)) {
    throw new AppError(
      'not_configured',
      `STREAM_PARTITIONS=${partitions} needs MongoDB ${needMajor}.${needMinor} or later ($toHashedIndexKey); the server is ${version.join('.')}: set STREAM_PARTITIONS=1 or upgrade the server`,
    );
  }
}
