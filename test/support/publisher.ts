import type { PublishMessage, PublishResult, Publisher } from '../../lib/qstash/publisher.js';

/**
 * A publisher that records what it accepts and deduplicates by `deduplicationId` as QStash does
 * (a repeated id is answered `deduplicated: true` with no message id, and not recorded again).
 * Nothing is delivered: a test reads `messages` and delivers what it needs itself.
 */
export class RecordingPublisher implements Publisher {
  readonly messages: PublishMessage[] = [];
  private readonly ids = new Set<string>();
  async publishBatch(messages: PublishMessage[]): Promise<PublishResult[]> {
    return messages.map((m) => {
      const deduplicated = this.ids.has(m.deduplicationId);
      this.ids.add(m.deduplicationId);
      if (!deduplicated) this.messages.push(m);
      return { messageId: deduplicated ? null : `m${this.messages.length}`, deduplicated };
    });
  }
}
