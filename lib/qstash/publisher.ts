import { Client } from '@upstash/qstash';
import type { Config } from '../platform/config.js';

/** One message to publish: a JSON POST to `url`, deduplicated and flow-controlled by QStash. */
export interface PublishMessage {
  url: string;
  body: Record<string, unknown>;
  /** Same id within QStash's dedup window → accepted once, delivered once. */
  deduplicationId: string;
  /** Messages with the same key run `parallelism` at a time. */
  flowControlKey: string;
  /** Parallel deliveries per flow-control key; default 1. */
  parallelism?: number;
  /** Deliver no earlier than this many whole seconds from now (QStash `Upstash-Delay`); default 0. */
  delaySeconds?: number;
}

export interface PublishResult {
  messageId: string | null;
  deduplicated: boolean;
  /** Set when QStash refused this one message of a batch. */
  error?: string;
}

/** The narrow port the fan-out needs; tests hand in a fake. */
export interface Publisher {
  publishBatch(messages: PublishMessage[]): Promise<PublishResult[]>;
}

/** QStash accepts at most this many messages per batch request. */
const BATCH_LIMIT = 100;
/** QStash delivery attempts after the first; a later cron tick covers what is still missed. */
const DELIVERY_RETRIES = 3;

/** The real `@upstash/qstash` Client behind the Publisher port, or null when QStash is not configured. */
export function qstashPublisher(config: Config): Publisher | null {
  if (!config.QSTASH_TOKEN) return null;
  const client = new Client({
    baseUrl: config.QSTASH_URL ?? 'https://qstash.upstash.io',
    token: config.QSTASH_TOKEN.reveal(),
    enableTelemetry: false,
    devMode: false,
  });
  return {
    async publishBatch(messages) {
      const results: PublishResult[] = [];
      for (let i = 0; i < messages.length; i += BATCH_LIMIT) {
        const chunk = messages.slice(i, i + BATCH_LIMIT);
        const answer = await client.batchJSON(
          chunk.map((m) => ({
            url: m.url,
            body: m.body,
            deduplicationId: m.deduplicationId,
            flowControl: { key: m.flowControlKey, parallelism: m.parallelism ?? 1 },
            retries: DELIVERY_RETRIES,
            ...(m.delaySeconds ? { delay: m.delaySeconds } : {}),
          })),
        );
        for (const r of answer as unknown as Array<{ messageId?: string; deduplicated?: boolean; error?: string }>) {
          results.push({ messageId: r.messageId ?? null, deduplicated: Boolean(r.deduplicated), ...(r.error ? { error: r.error } : {}) });
        }
      }
      return results;
    },
  };
}
