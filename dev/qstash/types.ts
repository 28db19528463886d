/** Data kept by the local QStash server for each message, delivery attempt and dead letter. */

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface FlowControl {
  key: string;
  /** Max deliveries in flight at once for this key. */
  parallelism?: number;
  /** Max deliveries started per period for this key. */
  rate?: number;
  /** Period of `rate`; default 1 s. */
  periodMs: number;
}

/** Settings of a callback or failure callback (`Upstash-Callback-*`, `Upstash-Failure-Callback-*`). */
export interface CallbackConfig {
  url: string;
  method: HttpMethod;
  retries?: number;
  timeoutMs?: number;
  delayMs?: number;
  retryDelay?: string;
  forwardHeaders: Array<[string, string]>;
}

/** What a publish request asks for, after its headers were read. */
export interface MessageSpec {
  kind: 'message' | 'callback' | 'failure-callback';
  url: string;
  method: HttpMethod;
  body: Buffer;
  contentType?: string;
  /** Headers delivered to the destination (the `Upstash-Forward-` prefix removed). */
  forwardHeaders: Array<[string, string]>;
  /** Epoch ms before which the first attempt must not start. */
  notBefore: number;
  maxRetries: number;
  retryDelay?: string;
  timeoutMs: number;
  flowControl?: FlowControl;
  queueName?: string;
  callback?: CallbackConfig;
  failureCallback?: CallbackConfig;
  labels: string[];
  /** Set for callbacks: the message whose attempt produced this one. */
  sourceMessageId?: string;
  callerIp?: string;
}

export interface Attempt {
  /** Value of `Upstash-Retried` for this attempt (0 for the first). */
  retried: number;
  startedAt: number;
  endedAt: number;
  status?: number;
  /** Connection error or timeout, when no response was received. */
  error?: string;
  responseHeaders?: Record<string, string[]>;
  responseBody?: Buffer;
}

export type MessageState = 'pending' | 'in-flight' | 'delivered' | 'dead' | 'cancelled';

export interface StoredMessage extends MessageSpec {
  messageId: string;
  /** Insertion order; ties in due time are delivered in this order. */
  seq: number;
  createdAt: number;
  state: MessageState;
  /** Number of retries so far; the next attempt sends this as `Upstash-Retried`. */
  retried: number;
  /** Epoch ms of the next attempt. */
  dueAt: number;
  attempts: Attempt[];
  dlqId?: string;
}

export interface DlqEntry {
  dlqId: string;
  message: StoredMessage;
  failedAt: number;
  /** Why it was dead-lettered. */
  reason: 'retries-exhausted' | 'non-retryable';
}
