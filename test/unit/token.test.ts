import { describe, expect, it } from 'vitest';
import { tokenPosition, tokenTime } from '../../lib/streams/token.js';

// A token as mongod 7.0 prints it: KeyString, 0x82 + Timestamp(t=0x6745a1b2, i=0x0000000a) + …
const REAL = { _data: '826745A1B20000000A2B042C0100296E5A1004A5F1D2E3B4C5D6E7F8091A2B3C4D5E6F46645F696400646745A1B2C3D4E5F60718293A0004' };

describe('tokenPosition', () => {
  it('reads the cluster time of a mongod token', () => {
    expect(tokenPosition(REAL)).toBe('6745a1b20000000a');
    expect(tokenTime(REAL)?.getTime()).toBe(0x6745a1b2 * 1000);
  });
  it('orders tokens by (t, i)', () => {
    const a = tokenPosition({ _data: '82' + '6745A1B2' + '00000001' + '00' })!;
    const b = tokenPosition({ _data: '82' + '6745A1B2' + '00000002' + '00' })!;
    const c = tokenPosition({ _data: '82' + '6745A1B3' + '00000000' + '00' })!;
    expect(a < b && b < c).toBe(true);
  });
  it.each([
    ['null', null],
    ['no _data', { foo: 1 }],
    ['non-string _data', { _data: 42 }],
    ['other type byte', { _data: '8A6745A1B20000000A00' }],
    ['too short', { _data: '826745' }],
    ['not hex', { _data: '82ZZZZZZZZ0000000A00' }],
  ])('returns null for %s', (_name, token) => {
    expect(tokenPosition(token as never)).toBeNull();
    expect(tokenTime(token as never)).toBeNull();
  });
});
