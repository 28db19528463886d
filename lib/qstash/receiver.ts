import { Receiver } from '@upstash/qstash';
import { AppError, NotConfiguredError, UnauthorizedError } from '../platform/errors.js';
import { type Config } from '../platform/config.js';
import { publicUrl } from './messages.js';

/** The receiving side of QStash: signature verification and the answer that stops redelivery. */

/**
 * Verify an `Upstash-Signature` with the real QStash Receiver: the raw body, the destination URL
 * from configuration, current and next signing keys. Any failure is a 401.
 */
export async function verifyQStash(request: Request, rawBody: string, config: Config, path: string): Promise<void> {
  const signature = request.headers.get('upstash-signature');
  if (!signature) throw new UnauthorizedError('this route expects a QStash Upstash-Signature header; none was sent');
  const current = config.QSTASH_CURRENT_SIGNING_KEY;
  if (!current) throw new NotConfiguredError('QSTASH_CURRENT_SIGNING_KEY');
  const receiver = new Receiver({
    currentSigningKey: current.reveal(),
    // The Receiver wants both; without a next key the current one stands in (no rotation under way).
    nextSigningKey: (config.QSTASH_NEXT_SIGNING_KEY ?? current).reveal(),
    devMode: false,
  });
  try {
    await receiver.verify({ signature, body: rawBody, url: publicUrl(config, path) });
  } catch (error) {
    if (error instanceof AppError) throw error;
    throw new UnauthorizedError(`invalid QStash signature: it must be signed with QSTASH_CURRENT_SIGNING_KEY or QSTASH_NEXT_SIGNING_KEY for ${path} at PUBLIC_BASE_URL`);
  }
}

/**
 * For QStash deliveries a 4xx is still retried; a request that can never succeed (unknown stream, bad
 * body) answers 489 with `Upstash-NonRetryable-Error`, so it goes to the DLQ at once instead.
 */
export function nonRetryableForQStash(response: Response): Response {
  if (response.status < 400 || response.status >= 500 || response.status === 401) return response;
  const headers = new Headers(response.headers);
  headers.set('upstash-nonretryable-error', 'true');
  return new Response(response.body, { status: 489, headers });
}
