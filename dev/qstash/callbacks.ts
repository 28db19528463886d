import type { Attempt, CallbackConfig, MessageSpec, StoredMessage } from './types.js';

const b64 = (buf: Buffer | undefined) => (buf ?? Buffer.alloc(0)).toString('base64');

function sourceHeader(msg: StoredMessage): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [name, value] of msg.forwardHeaders) (out[name] ??= []).push(value);
  if (msg.contentType !== undefined) out['content-type'] = [msg.contentType];
  return out;
}

/**
 * The JSON QStash posts to a callback after an attempt (and to a failure callback, with `dlqId`,
 * after the last one). A connection error or timeout reports status 0 and the error text as body.
 */
export function callbackBody(msg: StoredMessage, attempt: Attempt, dlqId?: string): Record<string, unknown> {
  return {
    status: attempt.status ?? 0,
    header: attempt.responseHeaders ?? {},
    body: attempt.status === undefined ? Buffer.from(attempt.error ?? '').toString('base64') : b64(attempt.responseBody),
    retried: attempt.retried,
    maxRetries: msg.maxRetries,
    sourceMessageId: msg.messageId,
    url: msg.url,
    method: msg.method,
    sourceHeader: sourceHeader(msg),
    sourceBody: b64(msg.body),
    notBefore: String(msg.notBefore),
    createdAt: String(msg.createdAt),
    ...(msg.queueName !== undefined ? { queueName: msg.queueName } : {}),
    ...(msg.callerIp !== undefined ? { callerIP: msg.callerIp } : {}),
    ...(dlqId !== undefined ? { dlqId } : {}),
  };
}

/** A callback is itself a new signed, retried message; it inherits the source's retry setting by default. */
export function callbackSpec(
  kind: 'callback' | 'failure-callback',
  cfg: CallbackConfig,
  msg: StoredMessage,
  attempt: Attempt,
  nowMs: number,
  maxTimeoutMs: number,
  dlqId?: string,
): MessageSpec {
  const spec: MessageSpec = {
    kind,
    url: cfg.url,
    method: cfg.method,
    body: Buffer.from(JSON.stringify(callbackBody(msg, attempt, dlqId))),
    contentType: 'application/json',
    forwardHeaders: cfg.forwardHeaders,
    notBefore: nowMs + (cfg.delayMs ?? 0),
    maxRetries: cfg.retries ?? msg.maxRetries,
    timeoutMs: Math.min(cfg.timeoutMs ?? maxTimeoutMs, maxTimeoutMs),
    labels: [],
    sourceMessageId: msg.messageId,
  };
  if (cfg.retryDelay !== undefined) spec.retryDelay = cfg.retryDelay;
  return spec;
}
