import type { AnyBulkWriteOperation, Db, UpdateFilter } from 'mongodb';
import { fenceFilter, jobsCollection } from './claim.js';
import type { ProcessedJobDoc } from '../data/documents.js';
import type { Claim } from './types.js';

interface Pending {
  claim: Claim;
  writeId: string;
  update: UpdateFilter<ProcessedJobDoc>;
  resolve: (recorded: boolean) => void;
  reject: (error: unknown) => void;
}

/**
 * Fenced job writes (results, step progress, releases) grouped into unordered `bulkWrite`s:
 * a write waits at most for the batch in flight before it ("group commit"), so one round trip
 * carries every result that arrived during the previous one, up to `maxBatch` writes.
 *
 * Every write is the same fenced update as a direct write (`fenceFilter(claim)`), and additionally
 * sets `lastWriteId`, unique per write. A bulk write reports only how many documents matched in
 * total; when that is all of them each write is recorded, otherwise one `find` of the batch's
 * write ids tells which were (a write that did not match left a document without its id, and the
 * ids are never reused). So each caller learns exactly what `updateOne` would have told it:
 * `true` recorded, `false` the claim was lost.
 */
export class ResultBatcher {
  private queue: Pending[] = [];
  private inFlight: Promise<void> | null = null;
  private seq = 0;
  /** Bulk writes sent, and the readbacks of batches where some write did not match. */
  roundTrips = 0;
  writes = 0;

  constructor(
    private readonly db: Db,
    private readonly maxBatch = 256,
  ) {}

  /** Apply `update` fenced on `claim`. Resolves true when recorded, false when the claim was lost; rejects when the write failed. */
  write(claim: Claim, update: UpdateFilter<ProcessedJobDoc>): Promise<boolean> {
    const writeId = `${claim.token}/${++this.seq}`;
    const withId: UpdateFilter<ProcessedJobDoc> = { ...update, $set: { ...(update.$set ?? {}), lastWriteId: writeId } };
    return new Promise<boolean>((resolve, reject) => {
      this.queue.push({ claim, writeId, update: withId, resolve, reject });
      this.inFlight ??= this.drain();
    });
  }

  /** Resolves once every write handed in so far has been sent and answered. */
  async flush(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  private async drain(): Promise<void> {
    try {
      // Let the results completed in the same turn of the event loop join the first batch.
      await new Promise<void>((r) => setImmediate(r));
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          const recorded = await this.send(batch);
          batch.forEach((p, i) => p.resolve(recorded[i]!));
        } catch (error) {
          for (const p of batch) p.reject(error);
        }
      }
    } finally {
      this.inFlight = null;
    }
  }

  private async send(batch: Pending[]): Promise<boolean[]> {
    const jobs = jobsCollection(this.db);
    const ops: AnyBulkWriteOperation<ProcessedJobDoc>[] = batch.map((p) => ({ updateOne: { filter: fenceFilter(p.claim), update: p.update } }));
    const result = await jobs.bulkWrite(ops, { ordered: false });
    this.roundTrips++;
    this.writes += batch.length;
    if (result.matchedCount === batch.length) return batch.map(() => true);
    const found = await jobs
      .find({ _id: { $in: batch.map((p) => p.claim.jobId) }, lastWriteId: { $in: batch.map((p) => p.writeId) } }, { projection: { _id: 0, lastWriteId: 1 } })
      .toArray();
    this.roundTrips++;
    const landed = new Set(found.map((d) => d.lastWriteId));
    return batch.map((p) => landed.has(p.writeId));
  }
}
