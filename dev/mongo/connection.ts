/**
 * One client connection: reassembles messages from the byte stream and processes them strictly in
 * order (a waiting getMore holds only its own connection). Bad input — garbage, oversized or
 * truncated messages, unknown opcodes — closes this connection with a logged reason and nothing else.
 */
import type { Socket } from 'node:net';
import type { Document } from 'mongodb';
import { CommandError } from './errors.js';
import type { ConnectionInfo, ServerState } from './commands/context.js';
import { canonicalName, gossip, type Dispatcher } from './dispatch.js';
import { helloReply } from './commands/admin.js';
import {
  encodeMsgReply, encodeOpReply, FLAG_MORE_TO_COME, MAX_MESSAGE_BYTES, parseMessage, readHeader, WireError, type Request,
} from './wire.js';

export class Connection {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private queue: Buffer[] = [];
  private processing = false;
  private closed = false;
  private readonly abort = new AbortController();
  readonly info: ConnectionInfo;

  constructor(
    private readonly socket: Socket,
    private readonly state: ServerState,
    private readonly dispatcher: Dispatcher,
    id: number,
  ) {
    this.info = { id, remote: `${socket.remoteAddress}:${socket.remotePort}` };
    socket.setNoDelay(true);
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('close', () => this.onClose());
    socket.on('error', () => this.onClose());
  }

  close(reason?: string): void {
    if (reason) this.state.log(`[mongo-emulator] conn${this.info.id} closed: ${reason}`);
    this.onClose();
    this.socket.destroy();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.queue = [];
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 4) {
      // Read the length without joining everything: a large message arrives in many chunks.
      if (this.chunks[0]!.length < 4) this.chunks = [Buffer.concat(this.chunks)];
      const length = this.chunks[0]!.readInt32LE(0);
      if (length < 16 || length > MAX_MESSAGE_BYTES) {
        this.close(`invalid message length ${length} (must be 16..${MAX_MESSAGE_BYTES})`);
        return;
      }
      if (this.buffered < length) return;
      const head = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      this.queue.push(head.subarray(0, length));
      const rest = head.subarray(length);
      this.chunks = rest.length ? [rest] : [];
      this.buffered = rest.length;
    }
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        await this.handle(this.queue.shift()!);
      }
    } finally {
      this.processing = false;
    }
  }

  private async handle(message: Buffer): Promise<void> {
    let request: Request;
    try {
      request = parseMessage(message);
    } catch (error) {
      const reason = error instanceof WireError ? error.message : `unparseable message: ${(error as Error).message}`;
      this.close(reason);
      return;
    }
    const requestId = readHeader(message).requestId;
    if (request.kind === 'query') {
      this.write(encodeOpReply(requestId, this.handshake(request)));
      return;
    }
    const cmd = request.command;
    const db = typeof cmd.$db === 'string' ? cmd.$db : 'admin';
    const first = Object.keys(cmd)[0] ?? '';
    if ((first === 'hello' || first.toLowerCase() === 'ismaster') && cmd.client) this.noteClient(cmd);
    const reply = await this.dispatcher.run(cmd, { state: this.state, db, conn: this.info, signal: this.abort.signal });
    if (reply === undefined) {
      this.close();
      return;
    }
    // moreToCome: the client expects no reply (w:0 writes, endSessions in driver v7).
    if (request.flags & FLAG_MORE_TO_COME) return;
    this.write(this.encode(requestId, reply));
  }

  private encode(requestId: number, reply: Document): Buffer {
    try {
      return encodeMsgReply(requestId, reply);
    } catch (error) {
      const err = new CommandError(10334, `BSONObj size is invalid or reply could not be encoded: ${(error as Error).message}`).toReply();
      return encodeMsgReply(requestId, { ...err, $clusterTime: reply.$clusterTime, operationTime: reply.operationTime });
    }
  }

  /** The legacy OP_QUERY path: only hello/isMaster is accepted (mongod 5.1+). */
  private handshake(request: Request): Document {
    const cmd = request.command;
    const first = Object.keys(cmd)[0] ?? '';
    const name = canonicalName(first);
    if (name === 'isMaster' || name === 'hello') {
      this.noteClient(cmd);
      const reply = helloReply(name === 'isMaster', cmd, this.state, this.info.id);
      return { ...reply, ...gossip(this.state.storage.oplog.clusterTime) };
    }
    return new CommandError(
      352,
      `Unsupported OP_QUERY command: ${first}. The client driver may require an upgrade. For more details see https://dochub.mongodb.org/core/legacy-opcode-removal`,
    ).toReply();
  }

  private noteClient(cmd: Document): void {
    const app = (cmd.client as Document | undefined)?.application as Document | undefined;
    if (typeof app?.name === 'string') this.info.appName = app.name;
  }

  private write(buf: Buffer): void {
    if (!this.closed) this.socket.write(buf);
  }
}
