/**
 * Resume tokens shaped like mongod's: `{_data: "82" + 16 hex digits of the cluster time + ...}`.
 * The rest is this server's own encoding (version, token type, fromInvalidate, event identity);
 * clients treat tokens as opaque, and string order of `_data` still orders tokens by time.
 *
 *   82 TTTTTTTT IIIIIIII 2B04 <type: 00 high-water mark | 80 event> <inv: 00 | 01> [event id hex]
 *   82 TTTTTTTT IIIIIIII 2B04 81 00 FFFF [event id hex]   (fragment FFFF, 0-based, of a split event)
 */
import type { Document } from 'mongodb';
import { CommandError } from './errors.js';

export interface DecodedToken {
  t: number;
  i: number;
  kind: 'hwm' | 'event';
  fromInvalidate: boolean;
  /** 0-based fragment of an event split by `$changeStreamSplitLargeEvent` (mongod's `fragmentNum`). */
  fragment?: number;
}

const hex8 = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');

export function highWaterMarkToken(t: number, i: number): Document {
  return { _data: `82${hex8(t)}${hex8(i)}2B040000` };
}

/** Event token; `identity` (operation type and document key) only makes tokens look distinct. */
export function eventToken(t: number, i: number, identity: string | undefined, fromInvalidate = false): Document {
  const id = identity ? Buffer.from(identity, 'utf8').toString('hex').toUpperCase() : '';
  return { _data: `82${hex8(t)}${hex8(i)}2B0480${fromInvalidate ? '01' : '00'}${id}` };
}

/**
 * The token of fragment `n` (0-based) of the event whose token is `eventTokenDoc`: it orders after the
 * event's own position and before the next event, and resumes after that fragment.
 */
export function fragmentToken(eventTokenDoc: Document, n: number): Document {
  const data = eventTokenDoc._data as string;
  return { _data: `${data.slice(0, 22)}8100${n.toString(16).toUpperCase().padStart(4, '0')}${data.slice(26)}` };
}

const TOKEN_RE = /^82([0-9A-F]{8})([0-9A-F]{8})2B04(00|80|81)(00|01)((?:[0-9A-F]{2})*)$/i;

/** Parses a token from `resumeAfter`/`startAfter`; malformed tokens fail like mongod (40647 / 260). */
export function decodeToken(token: unknown): DecodedToken {
  if (token === null || typeof token !== 'object' || Array.isArray(token)) {
    throw new CommandError(14, 'resume token must be an object');
  }
  const data = (token as Document)._data;
  if (typeof data !== 'string') {
    throw new CommandError(40647, 'Bad resume token: _data of missing or of wrong type');
  }
  const m = TOKEN_RE.exec(data);
  if (!m) throw new CommandError(260, `Invalid resume token: could not decode '${data.slice(0, 64)}'`);
  const decoded: DecodedToken = {
    t: parseInt(m[1]!, 16),
    i: parseInt(m[2]!, 16),
    kind: m[3] === '00' ? 'hwm' : 'event',
    fromInvalidate: m[4] === '01',
  };
  if (m[3] === '81') {
    if (m[5]!.length < 4) throw new CommandError(260, `Invalid resume token: could not decode '${data.slice(0, 64)}'`);
    decoded.fragment = parseInt(m[5]!.slice(0, 4), 16);
  }
  return decoded;
}
