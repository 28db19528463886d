/**
 * Throughput of the emulator as the real driver sees it:
 *   `npx tsx dev/mongo/bench.ts [--docs N] [--uri mongodb://...]`
 * The emulator runs in a child process (as in tests and `npm start`), so client and server do not
 * share an event loop; `--uri` measures an already running server instead (e.g. a real mongod, or
 * the emulator started with `node --cpu-prof`). Prints one line per measurement.
 */
import { type Document } from 'mongodb';
import { benchTarget } from './bench-target.js';

const docsArg = process.argv.indexOf('--docs');
const N = docsArg > 0 ? Number(process.argv[docsArg + 1]) : 50_000;
const BATCH = 1000;

const target = await benchTarget('bench');
const { db } = target;
const coll = db.collection('submissions');

function submission(i: number): Document {
  return { organizationId: 'org1', formId: `form${i % 10}`, data: { name: `user ${i}`, email: `u${i}@example.com`, score: i % 100 }, submittedAt: new Date() };
}

const rate = (n: number, ms: number) => Math.round((n * 1000) / ms).toLocaleString('en-US');
const report = (label: string, n: number, ms: number) => console.log(`${label.padEnd(44)} ${String(n).padStart(7)} in ${String(Math.round(ms)).padStart(6)} ms = ${rate(n, ms).padStart(9)}/s`);

try {
  const stream = coll.watch([], { batchSize: 1000, maxAwaitTimeMS: 200 });
  await stream.tryNext();

  let t0 = performance.now();
  for (let i = 0; i < N; i += BATCH) {
    await coll.insertMany(Array.from({ length: Math.min(BATCH, N - i) }, (_, j) => submission(i + j)));
  }
  report(`insertMany (batches of ${BATCH})`, N, performance.now() - t0);

  t0 = performance.now();
  let events = 0;
  while (events < N) {
    const ev = await stream.tryNext();
    if (ev) events += 1;
  }
  report('change events read by one stream (tryNext)', events, performance.now() - t0);
  await stream.close();

  const M = Math.min(N, 5000);
  t0 = performance.now();
  for (let i = 0; i < M; i++) await coll.insertOne(submission(i));
  report('insertOne (sequential round trips)', M, performance.now() - t0);

  const ids = (await coll.find({}, { projection: { _id: 1 }, limit: M }).toArray()).map((d) => d._id);
  t0 = performance.now();
  for (const _id of ids) await coll.updateOne({ _id }, { $inc: { 'data.score': 1 } });
  report('updateOne by _id (sequential)', ids.length, performance.now() - t0);

  // Upserts go to their own, empty collection: a unique index on `key` cannot be built over
  // documents that lack `key` (they would all index as null and collide with E11000).
  const jobs = db.collection('bench_jobs');
  await jobs.drop().catch(() => undefined);
  await jobs.createIndex({ key: 1 }, { unique: true });
  t0 = performance.now();
  for (let i = 0; i < N; i += BATCH) {
    const ops = Array.from({ length: Math.min(BATCH, N - i) }, (_, j) => ({
      updateOne: { filter: { key: `k${i + j}` }, update: { $setOnInsert: { key: `k${i + j}`, status: 'queued' } }, upsert: true },
    }));
    await jobs.bulkWrite(ops, { ordered: false });
  }
  report(`bulkWrite upserts on a unique key (batches of ${BATCH})`, N, performance.now() - t0);

  t0 = performance.now();
  const total = await coll.countDocuments({ 'data.score': { $gte: 50 } });
  report(`countDocuments scan over ${(await coll.estimatedDocumentCount()).toLocaleString('en-US')} docs`, 1, performance.now() - t0);
  void total;
} finally {
  await db.dropDatabase();
  await target.close();
}
