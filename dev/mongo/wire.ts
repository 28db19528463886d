/**
 * Wire framing: the 16-byte header, OP_MSG (kind 0 body + kind 1 document sequences), the legacy
 * OP_QUERY handshake, and the two reply forms (OP_MSG with one kind-0 section, OP_REPLY with one
 * document). Malformed input raises `WireError`; the connection then closes with that reason.
 */
import type { Document } from 'mongodb';
import { decode, encodeLarge as encode } from './bson.js';

export const OP_REPLY = 1;
export const OP_QUERY = 2004;
export const OP_COMPRESSED = 2012;
export const OP_MSG = 2013;

export const FLAG_CHECKSUM = 1;
export const FLAG_MORE_TO_COME = 2;
export const FLAG_EXHAUST_ALLOWED = 1 << 16;

/** mongod's maxMessageSizeBytes. */
export const MAX_MESSAGE_BYTES = 48_000_000;

export class WireError extends Error {}

export interface Header {
  length: number;
  requestId: number;
  responseTo: number;
  opCode: number;
}

export interface Request {
  header: Header;
  kind: 'msg' | 'query';
  flags: number;
  /** The command document, with document sequences merged in as arrays. */
  command: Document;
  /** OP_QUERY only: the full collection name (`admin.$cmd`). */
  fullCollectionName?: string;
}

export function readHeader(buf: Buffer): Header {
  return {
    length: buf.readInt32LE(0),
    requestId: buf.readInt32LE(4),
    responseTo: buf.readInt32LE(8),
    opCode: buf.readInt32LE(12),
  };
}

function readCString(buf: Buffer, offset: number): [string, number] {
  const end = buf.indexOf(0, offset);
  if (end < 0) throw new WireError('unterminated cstring');
  return [buf.toString('utf8', offset, end), end + 1];
}

function readDocument(buf: Buffer, offset: number, limit: number): [Document, number] {
  if (offset + 5 > limit) throw new WireError('truncated BSON document');
  const size = buf.readInt32LE(offset);
  if (size < 5 || offset + size > limit) throw new WireError(`invalid BSON document size ${size}`);
  try {
    return [decode(buf.subarray(offset, offset + size)), offset + size];
  } catch (error) {
    throw new WireError(`invalid BSON: ${(error as Error).message}`);
  }
}

/** Parses one complete message (header included). */
export function parseMessage(buf: Buffer): Request {
  const header = readHeader(buf);
  if (header.opCode === OP_MSG) {
    const flags = buf.readUInt32LE(16);
    // Unknown "required" bits (low 16) must be rejected, per the OP_MSG spec.
    if ((flags & 0xffff & ~(FLAG_CHECKSUM | FLAG_MORE_TO_COME)) !== 0) throw new WireError(`unsupported OP_MSG flag bits ${flags}`);
    const end = flags & FLAG_CHECKSUM ? buf.length - 4 : buf.length;
    let offset = 20;
    let command: Document | undefined;
    const sequences: [string, Document[]][] = [];
    while (offset < end) {
      const kind = buf[offset]!;
      offset += 1;
      if (kind === 0) {
        if (command) throw new WireError('OP_MSG with more than one kind-0 section');
        [command, offset] = readDocument(buf, offset, end);
      } else if (kind === 1) {
        const size = buf.readInt32LE(offset);
        const seqEnd = offset + size;
        if (size < 5 || seqEnd > end) throw new WireError(`invalid document sequence size ${size}`);
        let [identifier, pos] = readCString(buf, offset + 4);
        const docs: Document[] = [];
        while (pos < seqEnd) {
          let doc: Document;
          [doc, pos] = readDocument(buf, pos, seqEnd);
          docs.push(doc);
        }
        sequences.push([identifier, docs]);
        offset = seqEnd;
      } else {
        throw new WireError(`unknown OP_MSG section kind ${kind}`);
      }
    }
    if (!command) throw new WireError('OP_MSG without a kind-0 section');
    for (const [id, docs] of sequences) command[id] = docs;
    return { header, kind: 'msg', flags, command };
  }
  if (header.opCode === OP_QUERY) {
    const flags = buf.readInt32LE(16);
    const [fullCollectionName, afterName] = readCString(buf, 20);
    const [command] = readDocument(buf, afterName + 8, buf.length);
    return { header, kind: 'query', flags, command, fullCollectionName };
  }
  if (header.opCode === OP_COMPRESSED) throw new WireError('OP_COMPRESSED is not supported (compression was not negotiated)');
  throw new WireError(`unknown opcode ${header.opCode}`);
}

let nextRequestId = 1;

function header(length: number, responseTo: number, opCode: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeInt32LE(length, 0);
  h.writeInt32LE(nextRequestId++ & 0x7fffffff, 4);
  h.writeInt32LE(responseTo, 8);
  h.writeInt32LE(opCode, 12);
  return h;
}

/** An OP_MSG reply: flagBits 0 and a single kind-0 section. */
export function encodeMsgReply(responseTo: number, doc: Document): Buffer {
  const body = encode(doc);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32LE(0, 0);
  prefix[4] = 0;
  return Buffer.concat([header(16 + 5 + body.length, responseTo, OP_MSG), prefix, body]);
}

/** An OP_REPLY with exactly one document (the answer to an OP_QUERY handshake). */
export function encodeOpReply(responseTo: number, doc: Document): Buffer {
  const body = encode(doc);
  const fields = Buffer.alloc(20);
  fields.writeInt32LE(8, 0); // AwaitCapable
  fields.writeBigInt64LE(0n, 4);
  fields.writeInt32LE(0, 12);
  fields.writeInt32LE(1, 16);
  return Buffer.concat([header(16 + 20 + body.length, responseTo, OP_REPLY), fields, body]);
}
