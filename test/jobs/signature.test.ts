import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Secret } from '../../lib/platform/secret.js';
import { signWebhook, verifyWebhookSignature } from '../../lib/jobs/signature.js';

const secret = 'whsec_test_secret';
const body = JSON.stringify({ job: { key: 'wf:sub:insert' }, submission: { a: 1 } });
const t = 1_900_000_000;

describe('webhook signature', () => {
  it('is t=<seconds>,v1=<hex HMAC-SHA256 of "t.body">', () => {
    const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
    expect(signWebhook(secret, t, body)).toBe(`t=${t},v1=${expected}`);
    expect(signWebhook(new Secret(secret), t, body)).toBe(`t=${t},v1=${expected}`);
  });

  it('verifies: valid, at the tolerance edge, with bytes or string body', () => {
    const header = signWebhook(secret, t, body);
    expect(verifyWebhookSignature(secret, header, body, t)).toBe(true);
    expect(verifyWebhookSignature(secret, header, Buffer.from(body), t + 300)).toBe(true);
    expect(verifyWebhookSignature(secret, header, body, t - 300)).toBe(true);
  });

  it.each([
    ['wrong secret', () => verifyWebhookSignature('other', signWebhook(secret, t, body), body, t)],
    ['body changed', () => verifyWebhookSignature(secret, signWebhook(secret, t, body), body + ' ', t)],
    ['too old', () => verifyWebhookSignature(secret, signWebhook(secret, t, body), body, t + 301)],
    ['from the future', () => verifyWebhookSignature(secret, signWebhook(secret, t, body), body, t - 301)],
    ['tighter tolerance', () => verifyWebhookSignature(secret, signWebhook(secret, t, body), body, t + 10, 5)],
    ['timestamp swapped', () => verifyWebhookSignature(secret, signWebhook(secret, t, body).replace(`t=${t}`, `t=${t + 1}`), body, t)],
    ['no header', () => verifyWebhookSignature(secret, undefined, body, t)],
    ['empty header', () => verifyWebhookSignature(secret, '', body, t)],
    ['no v1', () => verifyWebhookSignature(secret, `t=${t}`, body, t)],
    ['no t', () => verifyWebhookSignature(secret, signWebhook(secret, t, body).split(',')[1], body, t)],
    ['short v1', () => verifyWebhookSignature(secret, `t=${t},v1=abcd`, body, t)],
    ['garbage', () => verifyWebhookSignature(secret, 'garbage', body, t)],
  ])('rejects: %s', (_name, check) => {
    expect(check()).toBe(false);
  });

  it('accepts any of several v1 signatures (secret rotation)', () => {
    const old = signWebhook('old-secret', t, body).split(',')[1];
    const header = `${signWebhook(secret, t, body)},${old}`;
    expect(verifyWebhookSignature(secret, header, body, t)).toBe(true);
    expect(verifyWebhookSignature('old-secret', header, body, t)).toBe(true);
    expect(verifyWebhookSignature('third', header, body, t)).toBe(false);
  });
});
