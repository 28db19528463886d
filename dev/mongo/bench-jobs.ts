/**
 * The two job-queue paths as the real driver drives them against the emulator:
 *   `npx tsx dev/mongo/bench-jobs.ts [--batches 50] [--queued 2000] [--claims 200] [--uri mongodb://...]`
 * 1. unordered bulkWrite of 100 `{key}` upserts (`$setOnInsert` a whole job + `$addToSet seenBy`)
 *    into a collection with the jobs indexes; every key is new (the insert path), then the same
 *    batches again (the "already there" path).
 * 2. claims: `findOneAndUpdate` with the due-job `$or` filter sorted by `runAt` over N queued jobs.
 * The emulator runs in a child process unless `--uri` is given. Prints per-batch / per-claim round
 * trip times and the emulator process's own CPU time per batch / claim (from /proc; Linux only).
 */
import { readFileSync } from 'node:fs';
import { type AnyBulkWriteOperation, type Document, type IndexDescription } from 'mongodb';
import { benchTarget } from './bench-target.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const BATCHES = arg('--batches', 50);
const QUEUED = arg('--queued', 2000);
const CLAIMS = arg('--claims', 200);
const BATCH = 100;

const target = await benchTarget('bench_jobs');
const { db, child } = target;

const INDEXES: IndexDescription[] = [
  { key: { key: 1 }, name: 'key_unique', unique: true },
  { key: { status: 1, runAt: 1 }, name: 'status_runAt' },
  { key: { status: 1, finishedAt: 1 }, name: 'status_finishedAt' },
  { key: { organizationId: 1, createdAt: 1 }, name: 'org_createdAt' },
];

/** A job document shaped like the ones the dispatcher writes. */
function job(i: number, now: Date): Document {
  return {
    key: `wf${i % 7}:sub${i}`,
    organizationId: `org${i % 3}`,
    workflowId: `wf${i % 7}`,
    workflowName: 'Notify team',
    formId: `form${i % 10}`,
    submissionId: `sub${i}`,
    source: 'org:acme',
    event: { operationType: 'insert', eventId: `ev${i}` },
    createdBy: 'change_stream',
    status: 'queued',
    attempts: 0,
    runAt: new Date(now.getTime() + (i % 97)),
    lease: null,
    lastError: null,
    steps: [{ type: 'webhook', url: 'https://example.com/hook', retries: 3 }, { type: 'email', to: ['a@example.com'] }],
    submission: { _id: `s${i}`, name: `user ${i}`, email: `u${i}@example.com`, answers: { q1: 'yes', q2: i % 5 } },
    eventClusterTime: null,
    eventWallTime: now,
    createdAt: now,
    updatedAt: now,
  };
}

/** CPU time (user + system, ms) the emulator child has used so far; NaN with `--uri` or off Linux. */
function serverCpuMs(): number {
  if (!child?.pid) return NaN;
  try {
    const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}
let cpuMark = 0;
/** Emulator CPU per operation since the last call, so load from other processes does not skew it. */
const cpuPer = (n: number) => {
  const now = serverCpuMs();
  const per = (now - cpuMark) / n;
  cpuMark = now;
  return Number.isNaN(per) ? '' : `; emulator CPU ${per.toFixed(2)} ms each`;
};

const ms = (t: number) => (performance.now() - t).toFixed(1);
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return `mean ${mean.toFixed(2)} ms, median ${s[Math.floor(s.length / 2)]!.toFixed(2)} ms, p90 ${s[Math.floor(s.length * 0.9)]!.toFixed(2)} ms`;
};

try {
  const jobs = db.collection('jobs');
  await jobs.createIndexes(INDEXES);
  const now = new Date();
  const ops = (b: number): AnyBulkWriteOperation[] =>
    Array.from({ length: BATCH }, (_, j) => {
      const doc = job(b * BATCH + j, now);
      return { updateOne: { filter: { key: doc.key }, update: { $setOnInsert: doc, $addToSet: { seenBy: 'change_stream' } }, upsert: true } };
    });

  const insertTimes: number[] = [];
  cpuPer(1);
  let t = performance.now();
  for (let b = 0; b < BATCHES; b++) {
    const t0 = performance.now();
    const r = await jobs.bulkWrite(ops(b), { ordered: false });
    insertTimes.push(performance.now() - t0);
    if (r.upsertedCount !== BATCH) throw new Error(`expected ${BATCH} upserts, got ${r.upsertedCount}`);
  }
  console.log(`upsert batches of ${BATCH} (all new keys), ${BATCHES} batches in ${ms(t)} ms: ${stats(insertTimes)}${cpuPer(BATCHES)}`);

  const matchTimes: number[] = [];
  t = performance.now();
  for (let b = 0; b < BATCHES; b++) {
    const t0 = performance.now();
    const r = await jobs.bulkWrite(ops(b), { ordered: false });
    matchTimes.push(performance.now() - t0);
    if (r.matchedCount !== BATCH) throw new Error(`expected ${BATCH} matches, got ${r.matchedCount}`);
  }
  console.log(`upsert batches of ${BATCH} (all existing keys), ${BATCHES} batches in ${ms(t)} ms: ${stats(matchTimes)}${cpuPer(BATCHES)}`);

  const plainTimes: number[] = [];
  const plain = db.collection('plain');
  await plain.createIndexes(INDEXES);
  cpuPer(1);
  for (let b = 0; b < BATCHES; b++) {
    const docs = Array.from({ length: BATCH }, (_, j) => ({ ...job(b * BATCH + j, now), seenBy: ['change_stream'] }));
    const t0 = performance.now();
    await plain.insertMany(docs, { ordered: false });
    plainTimes.push(performance.now() - t0);
  }
  console.log(`insertMany of the same ${BATCH} documents (reference): ${stats(plainTimes)}${cpuPer(BATCHES)}`);

  const queue = db.collection('queue');
  await queue.createIndexes(INDEXES);
  for (let i = 0; i < QUEUED; i += 1000) {
    await queue.insertMany(Array.from({ length: Math.min(1000, QUEUED - i) }, (_, j) => ({ ...job(i + j, new Date(now.getTime() - 60_000)), seenBy: ['change_stream'] })));
  }
  const claimTimes: number[] = [];
  let lastRunAt = 0;
  cpuPer(1);
  for (let c = 0; c < CLAIMS; c++) {
    const at = new Date();
    const t0 = performance.now();
    const before = await queue.findOneAndUpdate(
      {
        $or: [
          { status: 'queued', runAt: { $lte: at } },
          { status: 'running', 'lease.expiresAt': { $lt: at }, attempts: { $lt: 5 } },
        ],
      },
      { $set: { status: 'running', lease: { owner: 'bench', expiresAt: new Date(at.getTime() + 60_000), token: `t${c}` }, startedAt: at, updatedAt: at }, $inc: { attempts: 1 } },
      { sort: { runAt: 1 }, returnDocument: 'before' },
    );
    claimTimes.push(performance.now() - t0);
    if (!before) throw new Error('nothing claimed');
    const runAt = (before.runAt as Date).getTime();
    if (runAt < lastRunAt) throw new Error('claims out of runAt order');
    lastRunAt = runAt;
  }
  console.log(`claims (findOneAndUpdate $or + sort runAt) with ${QUEUED} queued, ${CLAIMS} claims: ${stats(claimTimes)}${cpuPer(CLAIMS)}`);
} finally {
  await db.dropDatabase();
  await target.close();
}
