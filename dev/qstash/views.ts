import type { DlqEntry, StoredMessage } from './types.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** QStash returns `body` when it is valid UTF-8 and `bodyBase64` otherwise; same for response bodies. */
function bodyFields(buf: Buffer | undefined, key: string): Record<string, string> {
  if (!buf) return {};
  try {
    return { [key]: strictUtf8.decode(buf) };
  } catch {
    return { [`${key}Base64`]: buf.toString('base64') };
  }
}

function header(m: StoredMessage): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [name, value] of m.forwardHeaders) (out[name] ??= []).push(value);
  if (m.contentType !== undefined) out['Content-Type'] = [m.contentType];
  return out;
}

/** A message in the shape of `GET /v2/messages/{id}` (the SDK's `MessagePayload`). */
export function messageView(m: StoredMessage): Record<string, unknown> {
  const fc = m.flowControl;
  return {
    messageId: m.messageId,
    url: m.url,
    method: m.method,
    header: header(m),
    ...bodyFields(m.body, 'body'),
    maxRetries: m.maxRetries,
    notBefore: m.notBefore,
    createdAt: m.createdAt,
    ...(m.retryDelay !== undefined ? { retryDelayExpression: m.retryDelay } : {}),
    ...(m.callback ? { callback: m.callback.url } : {}),
    ...(m.failureCallback ? { failureCallback: m.failureCallback.url } : {}),
    ...(m.queueName !== undefined ? { queueName: m.queueName } : {}),
    ...(m.callerIp !== undefined ? { callerIp: m.callerIp } : {}),
    flowControlKey: fc?.key ?? '',
    ...(fc?.parallelism !== undefined ? { parallelism: fc.parallelism } : {}),
    ...(fc?.rate !== undefined ? { rate: fc.rate, period: fc.periodMs / 1000 } : {}),
    ...(m.labels.length > 0 ? { label: m.labels[0], labels: m.labels } : {}),
  };
}

/** A dead letter in the shape of `GET /v2/dlq` entries (the SDK's `DlqMessage`). */
export function dlqView(e: DlqEntry): Record<string, unknown> {
  const last = e.message.attempts.at(-1);
  return {
    ...messageView(e.message),
    dlqId: e.dlqId,
    ...(last?.status !== undefined ? { responseStatus: last.status } : {}),
    ...(last?.responseHeaders ? { responseHeader: last.responseHeaders } : {}),
    ...bodyFields(last?.responseBody, 'responseBody'),
    ...(last?.error !== undefined ? { responseError: last.error } : {}),
  };
}
