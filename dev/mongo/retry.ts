/**
 * Retryable writes: the reply of each (lsid, txnNumber) write is remembered, so a retry of the same
 * statement (the driver retries once after a network error) returns the first result instead of
 * applying the write twice. Bounded, oldest entries evicted first.
 */
import type { Document } from 'mongodb';

export class RetryCache {
  private readonly entries = new Map<string, Document>();

  constructor(private readonly max: number) {}

  /** Cache key of a retryable write, or undefined when the command is not one. */
  static key(cmd: Document): string | undefined {
    if (cmd.txnNumber === undefined || cmd.txnNumber === null) return undefined;
    const id = (cmd.lsid as Document | undefined)?.id as { toString(enc?: string): string } | undefined;
    if (!id) return undefined;
    const ns = `${String(cmd.$db)}.${String(Object.values(cmd)[0])}`;
    return `${id.toString('hex')}:${String(cmd.txnNumber)}:${ns}`;
  }

  get(key: string): Document | undefined {
    return this.entries.get(key);
  }

  set(key: string, reply: Document): void {
    this.entries.set(key, reply);
    if (this.entries.size > this.max) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }
}
