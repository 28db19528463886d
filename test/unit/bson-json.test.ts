import { describe, expect, it } from 'vitest';
import { BSON } from 'mongodb';
import { stringifyJson, toJsonValue } from '../../lib/data/bson-json.js';
import { json } from '../../lib/http/route.js';
import { Secret } from '../../lib/platform/secret.js';

const { ObjectId, Long, Decimal128, Binary, Double, Int32, Timestamp, MinKey, MaxKey, BSONRegExp, BSONSymbol, Code, DBRef, UUID } = BSON;

describe('BSON → JSON: one mapping for webhook bodies and responses', () => {
  const table: [string, unknown, unknown][] = [
    ['int32', new Int32(7), 7],
    ['double', new Double(1.5), 1.5],
    ['NaN', Number.NaN, 'NaN'],
    ['-Infinity', new Double(-Infinity), '-Infinity'],
    ['int64 beyond 2^53 → exact digits', Long.fromString('708198820995006475'), '708198820995006475'],
    ['negative int64 beyond 2^53', Long.fromString('-9223372036854775808'), '-9223372036854775808'],
    ['int64 within 2^53 → number', Long.fromNumber(42), 42],
    ['bigint beyond 2^53', 9007199254740993n, '9007199254740993'],
    ['Decimal128 → exact string', Decimal128.fromString('1.10'), '1.10'],
    ['ObjectId → hex', new ObjectId('65a0000000000000000000ab'), '65a0000000000000000000ab'],
    ['date → ISO', new Date(Date.UTC(2025, 0, 31, 12)), '2025-01-31T12:00:00.000Z'],
    ['invalid date → null', new Date(Number.NaN), null],
    ['UUID → string', new UUID('0b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4d'), '0b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4d'],
    ['binary → base64 + subtype', new Binary(Buffer.from('hi'), 0x80), { base64: 'aGk=', subType: '80' }],
    ['Buffer → binary subtype 0', Buffer.from('hi'), { base64: 'aGk=', subType: '00' }],
    ['BSON regular expression', new BSONRegExp('^a.c$', 'im'), { pattern: '^a.c$', flags: 'im' }],
    ['JavaScript RegExp', /^x/giu, { pattern: '^x', flags: 'giu' }],
    ['timestamp', new Timestamp({ t: 1_700_000_000, i: 3 }), { t: 1_700_000_000, i: 3 }],
    ['MinKey', new MinKey(), { $minKey: 1 }],
    ['MaxKey', new MaxKey(), { $maxKey: 1 }],
    ['code', new Code('return 1'), { code: 'return 1' }],
    ['code with scope', new Code('return x', { x: Long.fromString('9007199254740993') }), { code: 'return x', scope: { x: '9007199254740993' } }],
    ['DBRef', new DBRef('users', new ObjectId('65a0000000000000000000ab'), 'app'), { $ref: 'users', $id: '65a0000000000000000000ab', $db: 'app' }],
    ['symbol', new BSONSymbol('sym'), 'sym'],
    ['undefined inside an array', [undefined, 1], [null, 1]],
    ['nested document keeps field order', { b: { d: Long.fromString('9007199254740993'), c: 1 }, a: [new ObjectId('65a0000000000000000000ab')] }, { b: { d: '9007199254740993', c: 1 }, a: ['65a0000000000000000000ab'] }],
    ['a Secret stays redacted', { token: new Secret('s3cret') }, { token: '[redacted]' }],
  ];

  it.each(table)('%s', (_name, value, expected) => {
    expect(toJsonValue(value)).toEqual(expected);
  });

  it('keeps field order in the text', () => {
    expect(stringifyJson({ b: 1, a: 2 })).toBe('{"b":1,"a":2}');
  });

  it('routes answer with the same mapping', async () => {
    const res = json(200, { userId: Long.fromString('708198820995006475'), at: new Date(0) });
    expect(await res.text()).toBe('{"userId":"708198820995006475","at":"1970-01-01T00:00:00.000Z"}');
  });
});
