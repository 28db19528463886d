/**
 * Deduplication window: a key (explicit id or content hash) seen within the window maps to the first
 * message's id, and the publish is answered 202 with that id instead of creating a message.
 */
export class DedupWindow {
  readonly #seen = new Map<string, { messageId: string; expiresAt: number }>();

  /** @param windowMs how long a key is remembered; QStash uses 10 minutes. */
  constructor(private readonly windowMs: number) {}

  lookup(key: string, nowMs: number): string | undefined {
    const hit = this.#seen.get(key);
    if (!hit) return undefined;
    if (hit.expiresAt <= nowMs) {
      this.#seen.delete(key);
      return undefined;
    }
    return hit.messageId;
  }

  remember(key: string, messageId: string, nowMs: number): void {
    this.#seen.set(key, { messageId, expiresAt: nowMs + this.windowMs });
    // Keeps the map bounded on long-running dev servers; Map iterates oldest first.
    for (const [k, v] of this.#seen) {
      if (v.expiresAt > nowMs) break;
      this.#seen.delete(k);
    }
  }
}
