/** Helpers shared by the conformance tests: bounded polling of change streams, no fixed sleeps. */
import type { ChangeStream, ChangeStreamDocument, Document, ResumeToken } from 'mongodb';

/** Polls tryNext() until `n` events arrived (each tryNext is at most one getMore of maxAwaitTimeMS). */
export async function take(stream: ChangeStream, n: number, timeoutMs = 10_000): Promise<Document[]> {
  const out: ChangeStreamDocument[] = [];
  const end = Date.now() + timeoutMs;
  while (out.length < n) {
    if (Date.now() > end) throw new Error(`only ${out.length} of ${n} events before the timeout`);
    const ev = await stream.tryNext();
    if (ev) out.push(ev);
  }
  return out as Document[];
}

/** Polls a condition every few ms until it holds, or fails after `timeoutMs`. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not reached before the timeout');
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const tokenData = (token: ResumeToken | null | undefined): string => (token as { _data?: string } | null)?._data ?? '';
