/**
 * Large documents through the emulator as the real driver sees them:
 *   `npx tsx dev/mongo/bench-large.ts [--rounds N] [--uri mongodb://...]`
 * Per round: insertOne of a 9.5 MiB submission, then the change stream reads its insert event
 * (`updateLookup`, as the drain asks), then a `$set` of a different 8.5 MiB string into the same
 * field, read through `$changeStreamSplitLargeEvent` as two fragments (the event is about 17 MiB).
 * Prints the median and worst time of each step in ms; a small insert + read is the reference.
 */
import { benchTarget } from './bench-target.js';

const roundsArg = process.argv.indexOf('--rounds');
const ROUNDS = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 10;
const MiB = 1024 * 1024;

const target = await benchTarget('bench_large');
const coll = target.db.collection('submissions');
const timings: Record<string, number[]> = {};
const time = async <T>(label: string, f: () => Promise<T>): Promise<T> => {
  const t0 = performance.now();
  const out = await f();
  (timings[label] ??= []).push(performance.now() - t0);
  return out;
};

try {
  const stream = coll.watch([{ $changeStreamSplitLargeEvent: {} }], { fullDocument: 'updateLookup', maxAwaitTimeMS: 1000 });
  await stream.tryNext();
  const next = async (n: number) => {
    const out = [];
    while (out.length < n) {
      const ev = await stream.tryNext();
      if (ev) out.push(ev);
    }
    return out;
  };
  for (let r = 0; r < ROUNDS; r++) {
    const id = `big${r}`;
    await time('insertOne 9.5 MiB', () => coll.insertOne({ _id: id as never, data: { blob: String(r % 10).repeat(9.5 * MiB) } }));
    await time('read its insert event', () => next(1));
    await time('updateOne $set 8.5 MiB', () => coll.updateOne({ _id: id as never }, { $set: { 'data.blob': 'u'.repeat(8.5 * MiB) } }));
    await time('read the ~17 MiB update as 2 fragments', () => next(2));
    await time('insertOne small (reference)', () => coll.insertOne({ _id: `small${r}` as never, data: { name: 'x' } }));
    await time('read its insert event (reference)', () => next(1));
  }
  await stream.close();
  for (const [label, xs] of Object.entries(timings)) {
    const sorted = [...xs].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    console.log(`${label.padEnd(42)} median ${median.toFixed(1).padStart(7)} ms   worst ${sorted[sorted.length - 1]!.toFixed(1).padStart(7)} ms`);
  }
} finally {
  await target.db.dropDatabase().catch(() => {});
  await target.close();
}
