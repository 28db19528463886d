import type { Clock } from './clock.js';
import { callbackSpec } from './callbacks.js';
import { deliverOnce, type DeliveryPort } from './deliver.js';
import { defaultBackoffMs, retryAfterMs } from './durations.js';
import { evaluateRetryDelay } from './expr.js';
import { FlowControlGate } from './flow.js';
import { randomId } from './keys.js';
import type { QueueRegistry } from './queues.js';
import type { Attempt, DlqEntry, MessageSpec, StoredMessage } from './types.js';

export interface EngineOptions {
  port: DeliveryPort;
  clock: Clock;
  queues: QueueRegistry;
  /** Multiplies every retry delay (backoff, Retry-Delay, Retry-After); 1 = QStash timing. */
  retryDelayScale: number;
  /** Attempt timeout cap for callbacks (the plan's max response duration). */
  maxTimeoutMs: number;
  log: (line: string) => void;
}

// setTimeout cannot wait longer than this; far wake-ups re-arm when it fires.
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Holds every message and delivers it: waits for its due time, respects queue and flow-control
 * limits, makes the attempt, then retries, dead-letters, or spawns callbacks.
 */
export class DeliveryEngine {
  readonly #messages = new Map<string, StoredMessage>();
  /** Messages waiting for their next attempt, in arrival order (so queues stay FIFO). */
  readonly #pending = new Map<string, StoredMessage>();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #dlq = new Map<string, DlqEntry>();
  /** Queue name → ids of messages that hold one of its parallelism slots (started, not finished). */
  readonly #queueActive = new Map<string, Set<string>>();
  readonly #flow = new FlowControlGate();
  readonly #idleWaiters: Array<() => void> = [];
  readonly #closing = new AbortController();
  #seq = 0;
  #dlqSeq = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;

  constructor(private readonly o: EngineOptions) {}

  /** Stores a new message and schedules it. */
  add(spec: MessageSpec): StoredMessage {
    const now = this.o.clock.now();
    const msg: StoredMessage = {
      ...spec,
      messageId: randomId('msg_', 40),
      seq: this.#seq++,
      createdAt: now,
      state: 'pending',
      retried: 0,
      dueAt: spec.notBefore,
      attempts: [],
    };
    this.#messages.set(msg.messageId, msg);
    this.#pending.set(msg.messageId, msg);
    this.pump();
    return msg;
  }

  get(messageId: string): StoredMessage | undefined {
    return this.#messages.get(messageId);
  }

  all(): StoredMessage[] {
    return [...this.#messages.values()];
  }

  dlq(): DlqEntry[] {
    return [...this.#dlq.values()];
  }

  dlqEntry(dlqId: string): DlqEntry | undefined {
    return this.#dlq.get(dlqId);
  }

  deleteDlq(dlqId: string): boolean {
    return this.#dlq.delete(dlqId);
  }

  /** Re-publishes a dead letter as a new message with the same settings; the entry leaves the DLQ. */
  retryDlq(dlqId: string): StoredMessage | undefined {
    const entry = this.#dlq.get(dlqId);
    if (!entry) return undefined;
    this.#dlq.delete(dlqId);
    const { messageId: _id, seq: _s, createdAt: _c, state: _st, retried: _r, dueAt: _d, attempts: _a, dlqId: _q, ...spec } = entry.message;
    return this.add({ ...spec, notBefore: this.o.clock.now() });
  }

  /** Messages waiting for delivery (not in flight) in a queue; the queue's lag. */
  lag(queueName: string): number {
    let n = 0;
    for (const m of this.#pending.values()) if (m.queueName === queueName) n++;
    return n;
  }

  /** Cancels a message that has not finished; an attempt in flight completes but is not retried. */
  cancel(messageId: string): boolean {
    const msg = this.#messages.get(messageId);
    if (!msg || (msg.state !== 'pending' && msg.state !== 'in-flight')) return false;
    const wasPending = msg.state === 'pending';
    msg.state = 'cancelled';
    this.#pending.delete(messageId);
    if (wasPending) this.#release(msg);
    this.pump();
    return true;
  }

  /** Resolves when nothing is pending or in flight (delayed and paused-queue messages count as pending). */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.#closing.abort();
    this.#arm(Infinity);
    await Promise.allSettled([...this.#inFlight]);
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  /** Starts every due message whose limits allow it, and arms a timer for the next one. */
  pump(): void {
    if (this.#closing.signal.aborted) return;
    const now = this.o.clock.now();
    let wake = Infinity;
    for (const msg of this.#pending.values()) {
      if (msg.dueAt > now) {
        wake = Math.min(wake, msg.dueAt);
        continue;
      }
      const gate = this.#gate(msg, now);
      if (gate === 'go') this.#start(msg, now);
      else if (gate !== 'blocked') wake = Math.min(wake, gate);
    }
    this.#arm(wake);
    this.#checkIdle();
  }

  /** 'go', 'blocked' (until something finishes or a queue resumes), or the time a rate window frees. */
  #gate(msg: StoredMessage, now: number): 'go' | 'blocked' | number {
    if (msg.queueName !== undefined) {
      const q = this.o.queues.get(msg.queueName);
      if (q?.paused) return 'blocked';
      const active = this.#queueActive.get(msg.queueName);
      if (!active?.has(msg.messageId) && (active?.size ?? 0) >= (q?.parallelism ?? 1)) return 'blocked';
    }
    return msg.flowControl ? this.#flow.check(msg.flowControl, now) : 'go';
  }

  #start(msg: StoredMessage, now: number): void {
    this.#pending.delete(msg.messageId);
    msg.state = 'in-flight';
    if (msg.queueName !== undefined) {
      const set = this.#queueActive.get(msg.queueName) ?? new Set<string>();
      set.add(msg.messageId);
      this.#queueActive.set(msg.queueName, set);
    }
    if (msg.flowControl) this.#flow.started(msg.flowControl, now);
    const p: Promise<void> = deliverOnce(msg, this.o.port, this.#closing.signal)
      .then((attempt) => this.#finish(msg, attempt))
      .catch((err: unknown) => this.o.log(`internal error delivering ${msg.messageId}: ${String(err)}`))
      .finally(() => {
        this.#inFlight.delete(p);
        this.pump();
      });
    this.#inFlight.add(p);
  }

  #finish(msg: StoredMessage, attempt: Attempt): void {
    msg.attempts.push(attempt);
    if (msg.flowControl) this.#flow.finished(msg.flowControl);
    if (this.#closing.signal.aborted) return;
    const now = this.o.clock.now();
    const outcome = attempt.status ?? attempt.error;
    const status = attempt.status;
    const nonRetryable = status === 489 && attempt.responseHeaders?.['upstash-nonretryable-error']?.[0]?.toLowerCase() === 'true';

    if (msg.state === 'cancelled') {
      this.#release(msg);
    } else if (status !== undefined && status >= 200 && status < 300) {
      msg.state = 'delivered';
      this.#release(msg);
    } else if (!nonRetryable && msg.retried < msg.maxRetries) {
      const delay = this.#retryDelay(msg, attempt, now);
      msg.retried += 1;
      msg.dueAt = now + delay;
      msg.state = 'pending';
      this.#pending.set(msg.messageId, msg);
      this.o.log(`${msg.messageId} attempt ${attempt.retried} failed (${outcome}); retry ${msg.retried}/${msg.maxRetries} in ${Math.round(delay)} ms`);
    } else {
      this.#deadLetter(msg, attempt, nonRetryable ? 'non-retryable' : 'retries-exhausted', now);
    }
    if (msg.state === 'delivered') this.o.log(`${msg.messageId} delivered to ${msg.url} (${status}, attempt ${attempt.retried})`);
    if (msg.callback) this.add(callbackSpec('callback', msg.callback, msg, attempt, now, this.o.maxTimeoutMs));
  }

  #deadLetter(msg: StoredMessage, attempt: Attempt, reason: DlqEntry['reason'], now: number): void {
    msg.state = 'dead';
    msg.dlqId = `${now}-${this.#dlqSeq++}`;
    this.#dlq.set(msg.dlqId, { dlqId: msg.dlqId, message: msg, failedAt: now, reason });
    this.#release(msg);
    this.o.log(`${msg.messageId} moved to DLQ ${msg.dlqId} (${reason}, last ${attempt.status ?? attempt.error})`);
    if (msg.failureCallback) {
      this.add(callbackSpec('failure-callback', msg.failureCallback, msg, attempt, now, this.o.maxTimeoutMs, msg.dlqId));
    }
  }

  /** Delay before the next attempt: the destination's Retry-After, else Upstash-Retry-Delay, else QStash's backoff. */
  #retryDelay(msg: StoredMessage, attempt: Attempt, now: number): number {
    const headers = new Headers();
    for (const [k, vs] of Object.entries(attempt.responseHeaders ?? {})) for (const v of vs) headers.append(k, v);
    let ms = retryAfterMs(headers, now);
    if (ms === undefined && msg.retryDelay !== undefined) {
      try {
        ms = evaluateRetryDelay(msg.retryDelay, msg.retried);
      } catch {
        ms = undefined; // validated at publish; unreachable unless the expression overflows
      }
    }
    ms ??= defaultBackoffMs(msg.retried + 1);
    return ms * this.o.retryDelayScale;
  }

  /** Frees the queue slot a finished message held. */
  #release(msg: StoredMessage): void {
    if (msg.queueName !== undefined) this.#queueActive.get(msg.queueName)?.delete(msg.messageId);
  }

  #isIdle(): boolean {
    return this.#pending.size === 0 && this.#inFlight.size === 0;
  }

  #checkIdle(): void {
    if (!this.#isIdle()) return;
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  #arm(at: number): void {
    if (at === this.#timerAt) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = at;
    if (at === Infinity) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, at - this.o.clock.now()));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.pump();
    }, delay);
  }
}
