import { createHash } from 'node:crypto';
import { SignatureError } from '@upstash/qstash';
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock, type Clock } from '../clock.js';
import { DEV_CURRENT_SIGNING_KEY, DEV_NEXT_SIGNING_KEY } from '../keys.js';
import { receiverFor, startRig, type Rig } from './support/clients.js';
import type { Received } from './support/sink.js';

const devReceiver = receiverFor({ currentSigningKey: DEV_CURRENT_SIGNING_KEY, nextSigningKey: DEV_NEXT_SIGNING_KEY });
const shifted = (ms: number): Clock => ({ now: () => Date.now() + ms, sleep: systemClock.sleep });

/** Publishes one JSON message through `rig` and returns the request its destination received. */
async function deliverOne(rig: Rig, path: string, body: unknown = { orgId: 'o1' }): Promise<Received> {
  await rig.client.publishJSON({ url: `${rig.sink.url}${path}`, body });
  await rig.server.idle();
  const got = rig.sink.at(path.split('?')[0]!);
  expect(got).toHaveLength(1);
  return got[0]!;
}

const sig = (r: Received) => r.headers.get('upstash-signature')!;

describe('delivery signatures, checked by the real Receiver', () => {
  let rig: Rig;
  let delivered: Received;
  const path = '/api/drain?org=o1';
  beforeAll(async () => {
    rig = await startRig();
    delivered = await deliverOne(rig, path);
  });
  afterAll(async () => {
    await rig?.close();
  });

  it('a delivered request verifies, with and without the URL check', async () => {
    await expect(devReceiver.verify({ signature: sig(delivered), body: delivered.body, url: `${rig.sink.url}${path}` })).resolves.toBe(true);
    await expect(devReceiver.verify({ signature: sig(delivered), body: delivered.body })).resolves.toBe(true);
  });

  it('the token has exactly the QStash claims: HS256, iss, sub = URL, iat = nbf, exp = +300 s, jti, padded body hash', async () => {
    const token = sig(delivered);
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'HS256', typ: 'JWT' });
    const claims = decodeJwt(token);
    expect(claims.iss).toBe('Upstash');
    expect(claims.sub).toBe(`${rig.sink.url}${path}`);
    expect(claims.nbf).toBe(claims.iat);
    expect(claims.exp! - claims.iat!).toBe(300);
    expect(Math.abs(claims.iat! - Date.now() / 1000)).toBeLessThan(5);
    expect(claims.jti).toMatch(/^jwt_/);
    const hash = createHash('sha256').update(delivered.body).digest('base64').replace(/\+/g, '-').replace(/\//g, '_');
    expect(claims.body).toBe(hash);
    // Independent of the SDK: the key's UTF-8 bytes are the HMAC key.
    await expect(jwtVerify(token, new TextEncoder().encode(DEV_CURRENT_SIGNING_KEY), { issuer: 'Upstash' })).resolves.toBeTruthy();
  });

  it('a tampered body is rejected, including re-serialised JSON with the same meaning', async () => {
    for (const body of ['{"orgId":"o2"}', '{ "orgId": "o1" }', '', `${delivered.body}\n`]) {
      const err = await devReceiver.verify({ signature: sig(delivered), body, url: delivered.url }).catch((e: unknown) => e);
      expect(err, body).toBeInstanceOf(SignatureError);
      expect((err as Error).message).toMatch(/body hash does not match/);
    }
  });

  it('a different URL is rejected: path, query, host, port and scheme all count', async () => {
    const u = new URL(delivered.url);
    const others = [
      `${u.origin}/api/other?org=o1`,
      `${u.origin}/api/drain?org=o2`,
      `${u.origin}/api/drain`,
      `http://localhost:${u.port}/api/drain?org=o1`,
      `http://127.0.0.1:${Number(u.port) + 1}/api/drain?org=o1`,
      `https://127.0.0.1:${u.port}/api/drain?org=o1`,
    ];
    for (const url of others) {
      const err = await devReceiver.verify({ signature: sig(delivered), body: delivered.body, url }).catch((e: unknown) => e);
      expect(err, url).toBeInstanceOf(SignatureError);
      expect((err as Error).message).toMatch(/invalid subject/);
    }
  });

  it('a token that is not a JWT at all is rejected', async () => {
    for (const signature of ['', 'abc', sig(delivered).replace(/\.[^.]+$/, '.AAAA')]) {
      await expect(devReceiver.verify({ signature, body: delivered.body })).rejects.toBeInstanceOf(SignatureError);
    }
  });

  it('rotating keys promotes next to current; receivers with either pair keep verifying', async () => {
    const before = { currentSigningKey: rig.server.currentSigningKey, nextSigningKey: rig.server.nextSigningKey };
    const res = await fetch(`${rig.server.url}/v2/keys/rotate`, { method: 'POST', headers: { Authorization: `Bearer ${rig.server.token}` } });
    const keys = (await res.json()) as { current: string; next: string };
    expect(keys.current).toBe(before.nextSigningKey);
    expect(keys.next).toMatch(/^sig_/);
    expect(keys.next).not.toBe(before.nextSigningKey);
    const after = await deliverOne(rig, '/after-rotation');
    expect(decodeJwt(sig(after)).sub).toBe(`${rig.sink.url}/after-rotation`);
    // Old pair: falls back to its next key, which is the new current.
    await expect(receiverFor(before).verify({ signature: sig(after), body: after.body, url: after.url })).resolves.toBe(true);
    await expect(
      receiverFor({ currentSigningKey: keys.current, nextSigningKey: keys.next }).verify({ signature: sig(after), body: after.body, url: after.url }),
    ).resolves.toBe(true);
  });
});

describe('signatures from other keys and other clocks', () => {
  const rigs: Rig[] = [];
  afterAll(async () => {
    await Promise.all(rigs.map((r) => r.close()));
  });
  const rigWith = async (opts: Parameters<typeof startRig>[0]) => {
    const r = await startRig(opts);
    rigs.push(r);
    return r;
  };

  it('forged: signed with a key the receiver does not hold', async () => {
    const forger = await rigWith({ currentSigningKey: 'sig_ForgedKeyForgedKeyForged1', nextSigningKey: 'sig_ForgedKeyForgedKeyForged2' });
    const got = await deliverOne(forger, '/forged');
    const err = await devReceiver.verify({ signature: sig(got), body: got.body, url: got.url }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SignatureError);
    // The same request verifies with the forger's own keys, so only the key made the difference.
    await expect(receiverFor(forger.server).verify({ signature: sig(got), body: got.body, url: got.url })).resolves.toBe(true);
  });

  it('signed with the receiver next key (rotation in progress) is accepted', async () => {
    const rotating = await rigWith({ currentSigningKey: DEV_NEXT_SIGNING_KEY, nextSigningKey: 'sig_SomeFutureKeySomeFutureKe' });
    const got = await deliverOne(rotating, '/next-key');
    await expect(devReceiver.verify({ signature: sig(got), body: got.body, url: got.url })).resolves.toBe(true);
  });

  it('expired: issued more than 300 s ago', async () => {
    const late = await rigWith({ clock: shifted(-10 * 60_000) });
    const got = await deliverOne(late, '/expired');
    const claims = decodeJwt(sig(got));
    expect(claims.exp! * 1000).toBeLessThan(Date.now());
    await expect(devReceiver.verify({ signature: sig(got), body: got.body, url: got.url })).rejects.toBeInstanceOf(SignatureError);
    // Only the time is wrong: a tolerance covering the skew accepts it.
    await expect(devReceiver.verify({ signature: sig(got), body: got.body, url: got.url, clockTolerance: 11 * 60 })).resolves.toBe(true);
  });

  it('not yet valid: nbf in the future', async () => {
    const early = await rigWith({ clock: shifted(10 * 60_000) });
    const got = await deliverOne(early, '/early');
    await expect(devReceiver.verify({ signature: sig(got), body: got.body, url: got.url })).rejects.toBeInstanceOf(SignatureError);
  });
});
