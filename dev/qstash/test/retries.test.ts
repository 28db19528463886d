import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRig, type Rig } from './support/clients.js';
import { overlapProbe, type Reply } from './support/sink.js';

/** Answers each request to `path` with the next reply of the script (the last one repeats). */
function script(rig: Rig, plan: Record<string, Array<Reply>>): void {
  rig.sink.respond((req) => {
    const replies = plan[req.path] ?? [{ status: 200 }];
    const n = rig.sink.at(req.path).length - 1;
    return replies[Math.min(n, replies.length - 1)]!;
  });
}

/** Milliseconds between the starts of consecutive attempts of a message, as the server recorded them. */
function gaps(rig: Rig, messageId: string): number[] {
  const starts = rig.server.messages().find((m) => m.messageId === messageId)!.attempts.map((a) => a.startedAt);
  return starts.slice(1).map((t, i) => t - starts[i]!);
}

let rig: Rig;
beforeAll(async () => {
  rig = await startRig({ retryDelayScale: 0.001 });
});
afterAll(async () => {
  await rig?.close();
});
beforeEach(() => {
  rig.sink.respond(() => ({ status: 200 }));
});

describe('local QStash server: retries, dead letters, flow control', () => {
  it('retries failed attempts with the same message id and increasing Upstash-Retried until a 2xx', async () => {
    script(rig, { '/retry/ok': [{ status: 500 }, { status: 503 }, { status: 204 }] });
    const url = `${rig.sink.url}/retry/ok`;
    const { messageId } = await rig.client.publishJSON({ url, body: { k: 1 } });
    await rig.server.idle();
    const got = rig.sink.at('/retry/ok');
    expect(got.map((r) => r.headers.get('upstash-retried'))).toEqual(['0', '1', '2']);
    expect(new Set(got.map((r) => r.headers.get('upstash-message-id')))).toEqual(new Set([messageId]));
    for (const r of got) {
      await expect(rig.receiver.verify({ signature: r.headers.get('upstash-signature')!, body: r.body, url })).resolves.toBe(true);
    }
    const msg = rig.server.messages().find((m) => m.messageId === messageId)!;
    expect(msg.state).toBe('delivered');
    expect(msg.attempts.map((a) => a.status)).toEqual([500, 503, 204]);
    expect(rig.server.dlq().some((e) => e.message.messageId === messageId)).toBe(false);
  });

  it('waits the QStash backoff min(86400, e^(2.5n)) s between attempts, scaled by retryDelayScale', async () => {
    script(rig, { '/retry/backoff': [{ status: 500 }, { status: 500 }, { status: 200 }] });
    const { messageId } = await rig.client.publishJSON({ url: `${rig.sink.url}/retry/backoff`, body: {} });
    await rig.server.idle();
    const [g1, g2] = gaps(rig, messageId);
    // e^2.5 s = 12.2 s and e^5 s = 148 s, times 0.001.
    expect(g1).toBeGreaterThanOrEqual(11);
    expect(g2).toBeGreaterThanOrEqual(146);
    expect(g2!).toBeLessThan(1800);
  });

  it('moves a message to the DLQ after the last retry fails, with the last response', async () => {
    script(rig, { '/retry/exhausted': [{ status: 500, body: 'boom', headers: { 'X-Why': 'db down' } }] });
    const url = `${rig.sink.url}/retry/exhausted`;
    const { messageId } = await rig.client.publishJSON({ url, body: { k: 2 }, retries: 2 });
    await rig.server.idle();
    expect(rig.sink.at('/retry/exhausted').map((r) => r.headers.get('upstash-retried'))).toEqual(['0', '1', '2']);
    const { messages } = await rig.client.dlq.listMessages({ filter: { url } });
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({ messageId, url, maxRetries: 2, responseStatus: 500, responseBody: 'boom', body: '{"k":2}' });
    expect(messages[0]!.responseHeader?.['x-why']).toEqual(['db down']);
    expect(rig.server.dlq().find((e) => e.message.messageId === messageId)?.reason).toBe('retries-exhausted');
  });

  it('489 with Upstash-NonRetryable-Error: true goes to the DLQ at once; 489 alone is retried', async () => {
    script(rig, {
      '/retry/489': [{ status: 489, headers: { 'Upstash-NonRetryable-Error': 'true' }, body: 'poison' }],
      '/retry/489-plain': [{ status: 489 }, { status: 200 }],
    });
    const poison = await rig.client.publishJSON({ url: `${rig.sink.url}/retry/489`, body: {}, retries: 3 });
    const plain = await rig.client.publishJSON({ url: `${rig.sink.url}/retry/489-plain`, body: {}, retries: 3 });
    await rig.server.idle();
    expect(rig.sink.at('/retry/489')).toHaveLength(1);
    expect(rig.sink.at('/retry/489-plain')).toHaveLength(2);
    const entry = rig.server.dlq().find((e) => e.message.messageId === poison.messageId);
    expect(entry?.reason).toBe('non-retryable');
    const { messages } = await rig.client.dlq.listMessages({ filter: { messageId: poison.messageId } });
    expect(messages[0]).toMatchObject({ responseStatus: 489, responseBody: 'poison' });
    expect(rig.server.messages().find((m) => m.messageId === plain.messageId)?.state).toBe('delivered');
  });

  it('a timed-out or unreachable attempt counts as failed (Upstash-Timeout shortens the attempt)', async () => {
    rig.sink.respond(() => ({ status: 200, until: new Promise(() => {}) }));
    const hung = await rig.client.publishJSON({ url: `${rig.sink.url}/retry/hang`, body: {}, retries: 0, timeout: 1 });
    const closedPort = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const refused = await rig.client.publishJSON({ url: `http://127.0.0.1:${closedPort}/nothing-listens`, body: {}, retries: 0 });
    await rig.server.idle();
    const byId = new Map(rig.server.dlq().map((e) => [e.message.messageId, e]));
    expect(byId.get(hung.messageId)?.message.attempts[0]?.error).toMatch(/timeout after 1000 ms/);
    expect(byId.get(refused.messageId)?.message.attempts[0]?.error).toMatch(/ECONNREFUSED/);
    const { messages } = await rig.client.dlq.listMessages({ filter: { messageId: hung.messageId } });
    expect(messages[0]?.responseStatus).toBeUndefined();
  });

  it('a DLQ entry can be retried (new message, delivered) or deleted through the SDK', async () => {
    script(rig, { '/dlq/a': [{ status: 500 }, { status: 200 }], '/dlq/b': [{ status: 500 }] });
    const a = await rig.client.publishJSON({ url: `${rig.sink.url}/dlq/a`, body: { a: 1 }, retries: 0 });
    const b = await rig.client.publishJSON({ url: `${rig.sink.url}/dlq/b`, body: { b: 1 }, retries: 0 });
    await rig.server.idle();
    const dlqIdOf = (id: string) => rig.server.dlq().find((e) => e.message.messageId === id)!.dlqId;
    const retried = await rig.client.dlq.retry(dlqIdOf(a.messageId));
    expect(retried.responses).toHaveLength(1);
    expect(retried.responses[0]!.messageId).not.toBe(a.messageId);
    await rig.server.idle();
    const second = rig.sink.at('/dlq/a')[1]!;
    expect(second.body).toBe('{"a":1}');
    expect(second.headers.get('upstash-message-id')).toBe(retried.responses[0]!.messageId);
    await rig.client.dlq.delete(dlqIdOf(b.messageId));
    expect(rig.server.dlq().some((e) => [a.messageId, b.messageId].includes(e.message.messageId))).toBe(false);
    await expect(rig.client.dlq.delete('no-such-id')).rejects.toMatchObject({ status: 404 });
  });

  it('flow control parallelism caps deliveries in flight per key; without it they run in parallel', async () => {
    const probe = overlapProbe({ '/fc/limited': 2, '/fc/free': 3 });
    rig.sink.respond(probe.responder);
    await rig.client.batchJSON(
      Array.from({ length: 6 }, (_, i) => [
        { url: `${rig.sink.url}/fc/limited`, body: { i }, flowControl: { key: 'org-1', parallelism: 2 } },
        { url: `${rig.sink.url}/fc/free`, body: { i } },
      ]).flat(),
    );
    await rig.server.idle();
    expect(rig.sink.at('/fc/limited')).toHaveLength(6);
    expect(probe.peak('/fc/limited')).toBe(2);
    expect(probe.peak('/fc/free')).toBeGreaterThan(2);
  });

  it('flow control rate starts at most `rate` deliveries per period for a key', async () => {
    const url = `${rig.sink.url}/fc/rate`;
    for (let i = 0; i < 4; i++) await rig.client.publishJSON({ url, body: { i }, flowControl: { key: 'rate-key', rate: 2, period: 1 } });
    await rig.server.idle();
    expect(rig.sink.at('/fc/rate')).toHaveLength(4);
    const times = rig.server
      .messages()
      .filter((m) => m.url === url)
      .map((m) => m.attempts[0]!.startedAt)
      .sort((a, b) => a - b);
    // Any three consecutive starts span at least one period.
    expect(times).toHaveLength(4);
    for (let i = 2; i < times.length; i++) expect(times[i]! - times[i - 2]!).toBeGreaterThanOrEqual(999);
  });

  it('posts a signed callback after each attempt and a failure callback with the dlqId after the last', async () => {
    script(rig, { '/cb/target': [{ status: 500, body: 'nope' }] });
    const url = `${rig.sink.url}/cb/target`;
    const callback = `${rig.sink.url}/cb/each`;
    const failureCallback = `${rig.sink.url}/cb/failure`;
    const { messageId } = await rig.client.publishJSON({ url, body: { c: 1 }, retries: 1, callback, failureCallback });
    await rig.server.idle();
    const each = rig.sink.at('/cb/each');
    expect(each).toHaveLength(2);
    for (const [i, r] of each.entries()) {
      await expect(rig.receiver.verify({ signature: r.headers.get('upstash-signature')!, body: r.body, url: callback })).resolves.toBe(true);
      const body = JSON.parse(r.body);
      expect(body).toMatchObject({ status: 500, retried: i, maxRetries: 1, sourceMessageId: messageId, url, method: 'POST' });
      expect(Buffer.from(body.body, 'base64').toString()).toBe('nope');
      expect(Buffer.from(body.sourceBody, 'base64').toString()).toBe('{"c":1}');
    }
    const [failure, ...more] = rig.sink.at('/cb/failure');
    expect(more).toHaveLength(0);
    const dlqId = rig.server.dlq().find((e) => e.message.messageId === messageId)!.dlqId;
    expect(JSON.parse(failure!.body)).toMatchObject({ dlqId, sourceMessageId: messageId, retried: 1, status: 500 });
  });
});

describe('local QStash server: destination-chosen retry timing at real scale', () => {
  let real: Rig;
  beforeAll(async () => {
    real = await startRig({ retryDelayScale: 1 });
  });
  afterAll(async () => {
    await real?.close();
  });

  it('Retry-After and X-RateLimit-Reset-* replace the backoff (0 = at once, Go durations accepted)', async () => {
    script(real, {
      '/ra': [
        { status: 429, headers: { 'Retry-After': '0' } },
        { status: 503, headers: { 'X-RateLimit-Reset-Requests': '200ms' } },
        { status: 200 },
      ],
    });
    const { messageId } = await real.client.publishJSON({ url: `${real.sink.url}/ra`, body: {} });
    await real.server.idle();
    const [g1, g2] = gaps(real, messageId);
    // The default backoff would wait 12 s before the first retry.
    expect(g1).toBeLessThan(1000);
    expect(g2).toBeGreaterThanOrEqual(195);
    expect(g2).toBeLessThan(2000);
  });

  it('Upstash-Retry-Delay expressions (milliseconds, retried = 0 for the first retry) replace the backoff', async () => {
    script(real, { '/rd': [{ status: 500 }, { status: 500 }, { status: 200 }] });
    const { messageId } = await real.client.publishJSON({ url: `${real.sink.url}/rd`, body: {}, retryDelay: '100 * (retried + 1)' });
    await real.server.idle();
    const [g1, g2] = gaps(real, messageId);
    expect(g1).toBeGreaterThanOrEqual(95);
    expect(g1).toBeLessThan(195);
    expect(g2).toBeGreaterThanOrEqual(195);
  });
});
