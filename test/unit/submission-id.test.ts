import { describe, expect, it } from 'vitest';
import { BSON } from 'mongodb';
import { decodeSubmissionId, encodeSubmissionId, submissionIdCandidates } from '../../lib/data/submission-id.js';

const { ObjectId, Long, Decimal128, Binary, Double, Int32, Timestamp, MinKey, MaxKey, BSONRegExp, UUID } = BSON;

/** Same BSON bytes: what MongoDB would store for the value. */
const bytes = (v: unknown) => Buffer.from(BSON.serialize({ v })).toString('hex');

describe('submission ids: one text form per _id', () => {
  it('keeps the 24-hex form of an ObjectId, so jobs from before keep their keys', () => {
    const id = new ObjectId('65a0000000000000000000ab');
    expect(encodeSubmissionId(id)).toBe('65a0000000000000000000ab');
    expect(decodeSubmissionId('65a0000000000000000000ab')).toEqual(id);
  });

  it('keeps a plain string id as it is', () => {
    expect(encodeSubmissionId('sub-123')).toBe('sub-123');
    expect(decodeSubmissionId('sub-123')).toBe('sub-123');
  });

  it('gives different forms to 1 and "1", and to {form, seq: 1} and {form, seq: 2}', () => {
    const ids = [1, '1', { form: 'contact', seq: 1 }, { form: 'contact', seq: 2 }];
    const forms = ids.map(encodeSubmissionId);
    expect(new Set(forms).size).toBe(4);
    expect(forms[0]).toBe('~{"$numberInt":"1"}');
    expect(forms[2]).toBe('~{"form":"contact","seq":{"$numberInt":"1"}}');
  });

  it('keeps field order: {a:1,b:2} and {b:2,a:1} are different _ids in MongoDB', () => {
    expect(encodeSubmissionId({ a: 1, b: 2 })).not.toBe(encodeSubmissionId({ b: 2, a: 1 }));
  });

  const distinct: [string, unknown][] = [
    ['int32 1', 1],
    ['string "1"', '1'],
    ['double 1.5', 1.5],
    ['int64 beyond 2^53', Long.fromString('708198820995006475')],
    ['Decimal128 1', Decimal128.fromString('1')],
    ['Decimal128 1.0', Decimal128.fromString('1.0')],
    ['date', new Date('2025-01-31T12:00:00.000Z')],
    ['binary subtype 0', new Binary(Buffer.from('ab'), 0)],
    ['binary subtype 4 (UUID)', new Binary(Buffer.from('ab'), 4)],
    ['UUID', new UUID('0b1d2c3e-4f50-4a6b-8c7d-9e0f1a2b3c4d')],
    ['nested document', { form: 'contact', seq: { n: 1 } }],
    ['array', [1, 2]],
    ['string that looks like an ObjectId', '65a0000000000000000000ab'],
    ['string starting with the tag', '~{"$numberInt":"1"}'],
    ['boolean', true],
    ['timestamp', new Timestamp({ t: 1, i: 2 })],
    ['regular expression', new BSONRegExp('^a', 'i')],
    ['min key', new MinKey()],
    ['max key', new MaxKey()],
    ['document with a $-field name', { $oid: '65a0000000000000000000ab' }],
  ];

  it('gives every BSON type its own form, and decodes each to the same BSON', () => {
    const forms = distinct.map(([, v]) => encodeSubmissionId(v));
    expect(new Set(forms).size).toBe(distinct.length);
    for (const [name, v] of distinct) {
      const decoded = decodeSubmissionId(encodeSubmissionId(v));
      expect(bytes(decoded), name).toBe(bytes(BSON.deserialize(BSON.serialize({ v })).v));
    }
  });

  it('computes one form for numbers the driver reads back as the same value (one _id in MongoDB)', () => {
    // The explicit path may get Long(5) or Double(5) from the application; the change stream reads 5.
    expect(encodeSubmissionId(Long.fromNumber(5))).toBe(encodeSubmissionId(5));
    expect(encodeSubmissionId(new Double(5))).toBe(encodeSubmissionId(5));
    expect(encodeSubmissionId(new Int32(5))).toBe(encodeSubmissionId(5));
  });

  it('looks up a 24-hex text as the ObjectId and as the string', () => {
    const c = submissionIdCandidates('65a0000000000000000000ab');
    expect(c[0]).toBeInstanceOf(ObjectId);
    expect(c[1]).toBe('65a0000000000000000000ab');
  });

  it('refuses a ~ form that does not parse, naming it', () => {
    expect(() => decodeSubmissionId('~{nope')).toThrow(/starts with "~" but is not an encoded _id/);
  });
});
