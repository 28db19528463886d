/** Queues (`/v2/queues`, `/v2/enqueue`): FIFO delivery with a parallelism limit, pausable. */
export interface QueueInfo {
  name: string;
  /** Messages of the queue that may be active at once; default 1. */
  parallelism: number;
  paused: boolean;
  createdAt: number;
  updatedAt: number;
}

export class QueueRegistry {
  readonly #queues = new Map<string, QueueInfo>();

  get(name: string): QueueInfo | undefined {
    return this.#queues.get(name);
  }

  list(): QueueInfo[] {
    return [...this.#queues.values()];
  }

  /** Enqueueing to an unknown queue creates it with default settings, as QStash does. */
  ensure(name: string, nowMs: number): QueueInfo {
    return this.#queues.get(name) ?? this.upsert(name, {}, nowMs);
  }

  upsert(name: string, patch: { parallelism?: number; paused?: boolean }, nowMs: number): QueueInfo {
    const prev = this.#queues.get(name);
    const next: QueueInfo = {
      name,
      parallelism: patch.parallelism ?? prev?.parallelism ?? 1,
      paused: patch.paused ?? prev?.paused ?? false,
      createdAt: prev?.createdAt ?? nowMs,
      updatedAt: nowMs,
    };
    this.#queues.set(name, next);
    return next;
  }

  delete(name: string): boolean {
    return this.#queues.delete(name);
  }
}
