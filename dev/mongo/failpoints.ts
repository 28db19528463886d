/**
 * The `failCommand` fail point, configured exactly like mongod's (with enableTestCommands):
 *
 *   { configureFailPoint: 'failCommand', mode: 'alwaysOn' | 'off' | { times: n } | { skip: n },
 *     data: { failCommands: [...], errorCode?, errorLabels?, closeConnection?, blockConnection?,
 *             blockTimeMS?, appName?, writeConcernError?, namespace? } }
 *
 * so fault-injection tests run unchanged against a real mongod.
 */
import type { Document } from 'mongodb';
import { CommandError } from './errors.js';
import { isPlainObject } from './bson.js';

export interface FailAction {
  closeConnection: boolean;
  blockMs: number;
  error?: { code: number; labels?: string[]; errmsg?: string };
  writeConcernError?: Document;
}

type Mode = { kind: 'off' } | { kind: 'alwaysOn' } | { kind: 'times'; left: number } | { kind: 'skip'; left: number };

export class FailPoints {
  private mode: Mode = { kind: 'off' };
  private data: Document = {};
  private timesEntered = 0;

  /** Handles `configureFailPoint`; returns the reply body. */
  configure(cmd: Document): Document {
    const name = cmd.configureFailPoint;
    if (name !== 'failCommand') {
      throw new CommandError(2, `Unknown fail point '${String(name)}': only 'failCommand' is available on this server`);
    }
    const previous = this.timesEntered;
    const mode = cmd.mode;
    if (mode === 'off') this.mode = { kind: 'off' };
    else if (mode === 'alwaysOn') this.mode = { kind: 'alwaysOn' };
    else if (isPlainObject(mode) && typeof mode.times === 'number') this.mode = mode.times > 0 ? { kind: 'times', left: mode.times } : { kind: 'off' };
    else if (isPlainObject(mode) && typeof mode.skip === 'number') this.mode = { kind: 'skip', left: mode.skip };
    else throw new CommandError(9, `Invalid fail point mode: ${JSON.stringify(mode)}`);
    if (cmd.data !== undefined) {
      if (!isPlainObject(cmd.data)) throw new CommandError(14, "'data' must be an object");
      this.data = cmd.data;
    }
    if (this.mode.kind !== 'off') {
      const fc = this.data.failCommands;
      if (!Array.isArray(fc) || fc.some((c) => typeof c !== 'string')) {
        throw new CommandError(2, "'failCommands' must be an array of command names");
      }
    }
    this.timesEntered = 0;
    return { count: previous, ok: 1 };
  }

  /** The action for a command about to run, consuming one activation; undefined when it does not apply. */
  check(commandName: string, appName: string | undefined, ns: string): FailAction | undefined {
    if (this.mode.kind === 'off') return undefined;
    if (commandName === 'configureFailPoint') return undefined;
    const names = this.data.failCommands as string[];
    if (!names.some((n) => n === commandName || n.toLowerCase() === commandName.toLowerCase())) return undefined;
    if (typeof this.data.appName === 'string' && this.data.appName !== appName) return undefined;
    if (typeof this.data.namespace === 'string' && this.data.namespace !== ns) return undefined;
    if (this.mode.kind === 'skip') {
      if (this.mode.left > 0) {
        this.mode.left -= 1;
        return undefined;
      }
    } else if (this.mode.kind === 'times') {
      this.mode.left -= 1;
      if (this.mode.left <= 0) this.mode = { kind: 'off' };
    }
    this.timesEntered += 1;
    const d = this.data;
    return {
      closeConnection: d.closeConnection === true,
      blockMs: d.blockConnection === true ? Number(d.blockTimeMS ?? 0) : 0,
      ...(typeof d.errorCode === 'number'
        ? { error: { code: d.errorCode, ...(Array.isArray(d.errorLabels) ? { labels: d.errorLabels as string[] } : {}), ...(typeof d.errmsg === 'string' ? { errmsg: d.errmsg } : {}) } }
        : {}),
      ...(isPlainObject(d.writeConcernError) ? { writeConcernError: d.writeConcernError } : {}),
    };
  }
}
