import { QstashError } from '@upstash/qstash';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEV_CURRENT_SIGNING_KEY, DEV_NEXT_SIGNING_KEY, DEV_TOKEN } from '../keys.js';
import { clientFor, startRig, type Rig } from './support/clients.js';
import { overlapProbe, until } from './support/sink.js';

let rig: Rig;
beforeAll(async () => {
  rig = await startRig();
});
afterAll(async () => {
  await rig?.close();
});
beforeEach(() => {
  rig.sink.respond(() => ({ status: 200, body: 'ok' }));
});

describe('local QStash server: publishing with the real @upstash/qstash Client', () => {
  it('defaults to the QStash dev-server credentials', () => {
    expect(rig.server.token).toBe(DEV_TOKEN);
    expect(rig.server.currentSigningKey).toBe(DEV_CURRENT_SIGNING_KEY);
    expect(rig.server.nextSigningKey).toBe(DEV_NEXT_SIGNING_KEY);
  });

  it('publishJSON delivers the raw JSON body, method, content type and forwarded headers, signed for the exact URL', async () => {
    const url = `${rig.sink.url}/api/drain?org=o1&x=a%20b`;
    const res = await rig.client.publishJSON({
      url,
      body: { orgId: 'o1', n: 1 },
      method: 'PUT',
      headers: { 'X-Custom': 'v1', Authorization: 'Bearer cron-secret' },
    });
    expect(res.messageId).toMatch(/^msg_/);
    expect(res.url).toBe(url);
    expect(res.deduplicated).toBeUndefined();
    await rig.server.idle();

    const [got, ...more] = rig.sink.at('/api/drain');
    expect(more).toHaveLength(0);
    expect(got!.url).toBe(url);
    expect(got!.method).toBe('PUT');
    expect(got!.body).toBe('{"orgId":"o1","n":1}');
    expect(got!.headers.get('content-type')).toBe('application/json');
    expect(got!.headers.get('x-custom')).toBe('v1');
    // A forwarded Authorization reaches the destination; the QStash token itself never does.
    expect(got!.headers.get('authorization')).toBe('Bearer cron-secret');
    expect(got!.headers.get('user-agent')).toBe('Upstash-QStash');
    expect(got!.headers.get('upstash-message-id')).toBe(res.messageId);
    expect(got!.headers.get('upstash-retried')).toBe('0');
    const signature = got!.headers.get('upstash-signature')!;
    await expect(rig.receiver.verify({ signature, body: got!.body, url })).resolves.toBe(true);
    const names: string[] = [];
    got!.headers.forEach((_v, k) => names.push(k));
    expect(names.filter((k) => k.startsWith('upstash-forward-'))).toEqual([]);
  });

  it('publish passes a non-JSON body through byte for byte with its own content type', async () => {
    const body = 'line one\nline two ✓ \u00e9';
    await rig.client.publish({ url: `${rig.sink.url}/raw`, body, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
    await rig.server.idle();
    const [got] = rig.sink.at('/raw');
    expect(got!.body).toBe(body);
    expect(got!.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(got!.method).toBe('POST');
    await expect(rig.receiver.verify({ signature: got!.headers.get('upstash-signature')!, body, url: got!.url })).resolves.toBe(true);
  });

  it('batchJSON delivers each message to its own destination and answers one entry per message', async () => {
    const res = await rig.client.batchJSON([
      { url: `${rig.sink.url}/batch/a`, body: { i: 1 } },
      { url: `${rig.sink.url}/batch/b`, body: { i: 2 }, headers: { 'X-Tag': 'b' } },
    ]);
    expect(res).toHaveLength(2);
    const ids = res.map((r) => ('messageId' in r ? r.messageId : undefined));
    expect(new Set(ids).size).toBe(2);
    await rig.server.idle();
    const a = rig.sink.at('/batch/a');
    const b = rig.sink.at('/batch/b');
    expect(a.map((r) => r.body)).toEqual(['{"i":1}']);
    expect(b.map((r) => r.body)).toEqual(['{"i":2}']);
    expect(b[0]!.headers.get('x-tag')).toBe('b');
    expect(a[0]!.headers.get('upstash-message-id')).toBe(ids[0]);
    for (const r of [...a, ...b]) {
      await expect(rig.receiver.verify({ signature: r.headers.get('upstash-signature')!, body: r.body, url: r.url })).resolves.toBe(true);
    }
  });

  it('a batch entry that fails answers {error} in its slot while the others go through', async () => {
    const res = await fetch(`${rig.server.url}/v2/batch`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${rig.server.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify([
        { destination: `${rig.sink.url}/batch/ok`, headers: {}, body: 'x' },
        { destination: `${rig.sink.url}/batch/bad`, headers: { 'upstash-retries': 'lots' }, body: 'y' },
      ]),
    });
    expect(res.status).toBe(200);
    const json = (await res.json()) as Array<Record<string, unknown>>;
    expect(json[0]!.messageId).toMatch(/^msg_/);
    expect(json[1]!.error).toMatch(/Upstash-Retries/);
    await rig.server.idle();
    expect(rig.sink.at('/batch/ok')).toHaveLength(1);
    expect(rig.sink.at('/batch/bad')).toHaveLength(0);
  });

  it('enqueue delivers in FIFO order, one at a time through a queue of parallelism 1, n at a time with n', async () => {
    const probe = overlapProbe({ '/queue/wide': 3 });
    rig.sink.respond(probe.responder);
    const fifo = rig.client.queue({ queueName: 'fifo' });
    const wide = rig.client.queue({ queueName: 'wide' });
    // Paused while filling, so every message is waiting when the queues resume.
    await fifo.upsert({ parallelism: 1, paused: true });
    await wide.upsert({ parallelism: 3, paused: true });
    for (let i = 0; i < 5; i++) {
      await fifo.enqueueJSON({ url: `${rig.sink.url}/queue/fifo`, body: { i } });
      await wide.enqueueJSON({ url: `${rig.sink.url}/queue/wide`, body: { i } });
    }
    await fifo.resume();
    await wide.resume();
    await rig.server.idle();
    expect(rig.sink.at('/queue/fifo').map((r) => JSON.parse(r.body).i)).toEqual([0, 1, 2, 3, 4]);
    expect(probe.peak('/queue/fifo')).toBe(1);
    expect(probe.peak('/queue/wide')).toBe(3);
    expect(await fifo.get()).toMatchObject({ name: 'fifo', parallelism: 1, paused: false, lag: 0 });
    expect(await wide.get()).toMatchObject({ name: 'wide', parallelism: 3 });
  });

  it('a paused queue holds its messages until resumed', async () => {
    const queue = rig.client.queue({ queueName: 'paused-q' });
    await queue.upsert({ parallelism: 2, paused: true });
    await queue.enqueueJSON({ url: `${rig.sink.url}/queue/paused`, body: { p: 1 } });
    expect(await queue.get()).toMatchObject({ paused: true, lag: 1 });
    expect(rig.sink.at('/queue/paused')).toHaveLength(0);
    await queue.resume();
    await rig.server.idle();
    expect(rig.sink.at('/queue/paused')).toHaveLength(1);
  });

  it('a second publish with the same deduplication id answers 202 deduplicated and is delivered once', async () => {
    const url = `${rig.sink.url}/dedup/id`;
    const first = await rig.client.publishJSON({ url, body: { a: 1 }, deduplicationId: 'tick-1:org-1' });
    const raw = await fetch(`${rig.server.url}/v2/publish/${url}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${rig.server.token}`, 'Upstash-Deduplication-Id': 'tick-1:org-1' },
      body: '{"a":1}',
    });
    expect(raw.status).toBe(202);
    expect(await raw.json()).toEqual({ messageId: first.messageId, url, deduplicated: true });
    const third = await rig.client.publishJSON({ url, body: { a: 1 }, deduplicationId: 'tick-1:org-1' });
    expect(third).toMatchObject({ messageId: first.messageId, deduplicated: true });
    const other = await rig.client.publishJSON({ url, body: { a: 1 }, deduplicationId: 'tick-2:org-1' });
    expect(other.messageId).not.toBe(first.messageId);
    await rig.server.idle();
    expect(rig.sink.at('/dedup/id').map((r) => r.headers.get('upstash-message-id'))).toEqual([first.messageId, other.messageId]);
  });

  it('content-based deduplication keys on destination, body and forwarded headers', async () => {
    const url = `${rig.sink.url}/dedup/content`;
    const a = await rig.client.publishJSON({ url, body: { a: 1 }, contentBasedDeduplication: true });
    const same = await rig.client.publishJSON({ url, body: { a: 1 }, contentBasedDeduplication: true });
    const otherBody = await rig.client.publishJSON({ url, body: { a: 2 }, contentBasedDeduplication: true });
    const otherHeader = await rig.client.publishJSON({ url, body: { a: 1 }, headers: { 'X-H': '1' }, contentBasedDeduplication: true });
    expect(same).toMatchObject({ messageId: a.messageId, deduplicated: true });
    expect(otherBody.deduplicated).toBeUndefined();
    expect(otherHeader.deduplicated).toBeUndefined();
    await rig.server.idle();
    expect(rig.sink.at('/dedup/content')).toHaveLength(3);
  });

  it('honours Upstash-Delay and Upstash-Not-Before, and the message is readable until delivered', async () => {
    const start = Date.now();
    const delayed = await rig.client.publishJSON({ url: `${rig.sink.url}/delay/a`, body: {}, delay: 1 });
    const notBefore = await rig.client.publishJSON({
      url: `${rig.sink.url}/delay/b`,
      body: {},
      notBefore: Math.ceil((start + 1000) / 1000),
    });
    const msg = await rig.client.messages.get(delayed.messageId);
    expect(msg.url).toBe(`${rig.sink.url}/delay/a`);
    expect(msg.notBefore).toBeGreaterThanOrEqual(start + 1000 - 5);
    expect(rig.sink.at('/delay/a')).toHaveLength(0);
    await rig.server.idle();
    const [a] = rig.sink.at('/delay/a');
    const [b] = rig.sink.at('/delay/b');
    expect(a!.receivedAt - start).toBeGreaterThanOrEqual(990);
    expect(b!.receivedAt).toBeGreaterThanOrEqual(Math.ceil((start + 1000) / 1000) * 1000 - 10);
    await expect(rig.client.messages.get(notBefore.messageId)).rejects.toMatchObject({ status: 404 });
  });

  it('a pending message can be cancelled and is never delivered', async () => {
    const res = await rig.client.publishJSON({ url: `${rig.sink.url}/cancel`, body: {}, delay: 60 });
    await expect(rig.client.messages.cancel(res.messageId)).resolves.toEqual({ cancelled: 1 });
    await rig.server.idle();
    expect(rig.sink.at('/cancel')).toHaveLength(0);
    expect(rig.server.messages().find((m) => m.messageId === res.messageId)?.state).toBe('cancelled');
  });

  it('rejects a missing, malformed or wrong token with 401 and a JSON error; accepts the qstash_token query parameter', async () => {
    const bad = clientFor(rig.server, 'not-the-token');
    const err = await bad.publishJSON({ url: `${rig.sink.url}/auth`, body: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QstashError);
    expect((err as QstashError).status).toBe(401);
    expect(JSON.parse((err as QstashError).message)).toHaveProperty('error');
    const attempts: Array<Record<string, string>> = [{}, { Authorization: 'Basic abc' }, { Authorization: `Bearer ${rig.server.token}x` }];
    for (const headers of attempts) {
      const res = await fetch(`${rig.server.url}/v2/keys`, { headers });
      expect(res.status).toBe(401);
      expect(await res.json()).toHaveProperty('error');
    }
    const viaQuery = await fetch(`${rig.server.url}/v2/keys?qstash_token=${encodeURIComponent(rig.server.token)}`);
    expect(await viaQuery.json()).toEqual({ current: rig.server.currentSigningKey, next: rig.server.nextSigningKey });
    await rig.server.idle();
    expect(rig.sink.at('/auth')).toHaveLength(0);
  });

  it('a qstash_token query parameter authenticates and is not part of the destination', async () => {
    const token = encodeURIComponent(rig.server.token);
    const res = await fetch(`${rig.server.url}/v2/publish/${rig.sink.url}/qt?a=1&qstash_token=${token}&b=2`, { method: 'POST', body: 'q' });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { url: string }).url).toBe(`${rig.sink.url}/qt?a=1&b=2`);
    await rig.server.idle();
    const [got] = rig.sink.at('/qt');
    expect(got!.url).toBe(`${rig.sink.url}/qt?a=1&b=2`);
    await expect(rig.receiver.verify({ signature: got!.headers.get('upstash-signature')!, body: 'q', url: got!.url })).resolves.toBe(true);
  });

  it('refuses malformed publish headers with 400 naming the header, and URL groups with 404', async () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ 'Upstash-Method': 'TRACE' }, /Upstash-Method/],
      [{ 'Upstash-Delay': 'soon' }, /Upstash-Delay/],
      [{ 'Upstash-Retries': '-1' }, /Upstash-Retries/],
      [{ 'Upstash-Retry-Delay': 'pow(2, retried' }, /Upstash-Retry-Delay/],
      [{ 'Upstash-Flow-Control-Key': 'k' }, /Flow-Control-Value/],
      [{ 'Upstash-Flow-Control-Key': 'k', 'Upstash-Flow-Control-Value': 'parallelism=0' }, /parallelism/],
    ];
    for (const [headers, message] of cases) {
      const res = await fetch(`${rig.server.url}/v2/publish/${rig.sink.url}/bad`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${rig.server.token}`, ...headers },
        body: 'x',
      });
      expect(res.status, JSON.stringify(headers)).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(message);
    }
    const group = await rig.client.publishJSON({ urlGroup: 'no-such-group', body: {} }).catch((e: unknown) => e);
    expect((group as QstashError).status).toBe(404);
    await rig.server.idle();
    expect(rig.sink.at('/bad')).toHaveLength(0);
  });

  it('a body larger than the limit is refused with 413', async () => {
    const small = await startRig({ maxBodyBytes: 1024 });
    try {
      const err = await small.client.publish({ url: `${small.sink.url}/big`, body: 'x'.repeat(2048) }).catch((e: unknown) => e);
      expect((err as QstashError).status).toBe(413);
      await small.client.publish({ url: `${small.sink.url}/big`, body: 'x'.repeat(512) });
      await small.server.idle();
      expect(small.sink.at('/big').map((r) => r.body.length)).toEqual([512]);
    } finally {
      await small.close();
    }
  });

  it('idle() waits for deliveries in flight', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    rig.sink.respond(() => ({ status: 200, until: gate }));
    await rig.client.publishJSON({ url: `${rig.sink.url}/slow`, body: {} });
    await until(() => rig.sink.at('/slow').length === 1, 'the slow request to arrive');
    let idle = false;
    const waiting = rig.server.idle().then(() => (idle = true));
    await new Promise((r) => setImmediate(r));
    expect(idle).toBe(false);
    release();
    await waiting;
    expect(rig.server.messages().find((m) => m.url.endsWith('/slow'))?.state).toBe('delivered');
  });
});
