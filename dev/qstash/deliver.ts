import { signDelivery } from './keys.js';
import type { Attempt, StoredMessage } from './types.js';

/** What one delivery attempt needs from the server. */
export interface DeliveryPort {
  fetchImpl: typeof fetch;
  /** The key QStash signs with (the current one; it changes on rotation). */
  signingKey(): string;
  nowMs(): number;
  /** Value of `Upstash-Region`, sent on every delivery as QStash does. */
  region: string;
}

// Hop-by-hop or computed headers; forwarding them would break the request rather than pass information.
const UNFORWARDABLE = new Set(['host', 'content-length', 'connection', 'transfer-encoding', 'keep-alive', 'upgrade']);

/** Response headers as QStash reports them in callbacks and the DLQ: name → values. */
export function headerRecord(headers: Headers): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  headers.forEach((value, name) => {
    (out[name] ??= []).push(value);
  });
  return out;
}

/** The headers the destination receives for attempt number `msg.retried`. */
export async function deliveryHeaders(msg: StoredMessage, port: DeliveryPort): Promise<Headers> {
  const headers = new Headers();
  for (const [name, value] of msg.forwardHeaders) {
    if (!UNFORWARDABLE.has(name.toLowerCase())) headers.append(name, value);
  }
  if (msg.contentType !== undefined) headers.set('Content-Type', msg.contentType);
  headers.set('User-Agent', 'Upstash-QStash');
  headers.set('Upstash-Message-Id', msg.messageId);
  headers.set('Upstash-Retried', String(msg.retried));
  headers.set('Upstash-Region', port.region);
  if (msg.callerIp !== undefined) headers.set('Upstash-Caller-Ip', msg.callerIp);
  headers.set('Upstash-Signature', await signDelivery({ key: port.signingKey(), url: msg.url, body: msg.body, nowMs: port.nowMs() }));
  return headers;
}

/**
 * Makes one HTTP attempt and reports it; never throws. Redirects are not followed (a 3xx is a failed
 * attempt). GET requests go without a body, because fetch cannot send one; the signature still covers it.
 */
export async function deliverOnce(msg: StoredMessage, port: DeliveryPort, closing: AbortSignal): Promise<Attempt> {
  const startedAt = port.nowMs();
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, msg.timeoutMs);
  const onClose = () => controller.abort();
  closing.addEventListener('abort', onClose, { once: true });
  const base = { retried: msg.retried, startedAt };
  try {
    const headers = await deliveryHeaders(msg, port);
    const res = await port.fetchImpl(msg.url, {
      method: msg.method,
      headers,
      body: msg.method === 'GET' ? undefined : new Uint8Array(msg.body),
      redirect: 'manual',
      signal: controller.signal,
    });
    const responseBody = Buffer.from(await res.arrayBuffer());
    return {
      ...base,
      endedAt: port.nowMs(),
      status: res.status,
      responseHeaders: headerRecord(res.headers),
      responseBody,
    };
  } catch (err) {
    const error = timedOut
      ? `timeout after ${msg.timeoutMs} ms`
      : closing.aborted
        ? 'server closed'
        : describeFetchError(err);
    return { ...base, endedAt: port.nowMs(), error };
  } finally {
    clearTimeout(timer);
    closing.removeEventListener('abort', onClose);
  }
}

function describeFetchError(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const detail = cause?.code ?? cause?.message;
    return detail ? `${err.message} (${detail})` : err.message;
  }
  return String(err);
}
