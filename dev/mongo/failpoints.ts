/**
 * The fail points of mongod's test commands (enableTestCommands) that fault-injection tests use,
 * configured exactly like mongod's:
 *
 *   { configureFailPoint: 'failCommand', mode: 'alwaysOn' | 'off' | { times: n } | { skip: n },
 *     data: { failCommands: [...], errorCode?, errorLabels?, closeConnection?, blockConnection?,
 *             blockTimeMS?, appName?, writeConcernError?, namespace? } }
 *
 *   { configureFailPoint: 'failGetMoreAfterCursorCheckout', mode: ..., data: { errorCode?, appName?, namespace? } }
 *
 * `failCommand` fires before the command runs (for getMore: before the cursor is checked out, so
 * mongod does not know it is a change-stream cursor and adds no ResumableChangeStreamError label).
 * `failGetMoreAfterCursorCheckout` (mongod's getmore_cmd.cpp) fires once the cursor is checked out:
 * the error then gets the labels a genuine getMore error would (SERVER-46091). Both honour the
 * `appName` and `namespace` filters of mongod's shouldActivateFailCommandFailPoint, so tests run
 * unchanged against a real mongod.
 */
import type { Document } from 'mongodb';
import { CommandError } from './errors.js';
import { isPlainObject } from './bson.js';

export interface FailAction {
  closeConnection: boolean;
  blockMs: number;
  error?: { code: number; labels?: string[]; errmsg?: string };
  writeConcernError?: Document;
  /** The fail point's `errorLabels`: they label a `writeConcernError` reply as well as an error. */
  labels?: string[];
}

type Mode = { kind: 'off' } | { kind: 'alwaysOn' } | { kind: 'times'; left: number } | { kind: 'skip'; left: number };

/** Names of the fail points this server implements. */
export const FAIL_POINT_NAMES = ['failCommand', 'failGetMoreAfterCursorCheckout'] as const;
type FailPointName = (typeof FAIL_POINT_NAMES)[number];

/** mongod's InternalError: the code of failGetMoreAfterCursorCheckout when `errorCode` is omitted. */
const INTERNAL_ERROR = 1;

class FailPoint {
  mode: Mode = { kind: 'off' };
  data: Document = {};
  timesEntered = 0;

  /** Whether the fail point fires for a command of this client and namespace, consuming one activation. */
  fires(appName: string | undefined, ns: string): boolean {
    if (this.mode.kind === 'off') return false;
    if (typeof this.data.appName === 'string' && this.data.appName !== appName) return false;
    if (typeof this.data.namespace === 'string' && this.data.namespace !== ns) return false;
    if (this.mode.kind === 'skip') {
      if (this.mode.left > 0) {
        this.mode.left -= 1;
        return false;
      }
    } else if (this.mode.kind === 'times') {
      this.mode.left -= 1;
      if (this.mode.left <= 0) this.mode = { kind: 'off' };
    }
    this.timesEntered += 1;
    return true;
  }
}

export class FailPoints {
  private readonly points: Record<FailPointName, FailPoint> = { failCommand: new FailPoint(), failGetMoreAfterCursorCheckout: new FailPoint() };

  /** Handles `configureFailPoint`; returns the reply body. */
  configure(cmd: Document): Document {
    const name = cmd.configureFailPoint;
    if (!FAIL_POINT_NAMES.includes(name)) {
      throw new CommandError(2, `Unknown fail point '${String(name)}': this server has ${FAIL_POINT_NAMES.join(', ')}`);
    }
    const fp = this.points[name as FailPointName];
    const previous = fp.timesEntered;
    const mode = cmd.mode;
    let next: Mode;
    if (mode === 'off') next = { kind: 'off' };
    else if (mode === 'alwaysOn') next = { kind: 'alwaysOn' };
    else if (isPlainObject(mode) && typeof mode.times === 'number') next = mode.times > 0 ? { kind: 'times', left: mode.times } : { kind: 'off' };
    else if (isPlainObject(mode) && typeof mode.skip === 'number') next = { kind: 'skip', left: mode.skip };
    else throw new CommandError(9, `Invalid fail point mode: ${JSON.stringify(mode)}`);
    let data = fp.data;
    if (cmd.data !== undefined) {
      if (!isPlainObject(cmd.data)) throw new CommandError(14, "'data' must be an object");
      data = cmd.data;
    }
    if (next.kind !== 'off' && name === 'failCommand') {
      const fc = data.failCommands;
      if (!Array.isArray(fc) || fc.some((c) => typeof c !== 'string')) {
        throw new CommandError(2, "'failCommands' must be an array of command names");
      }
    }
    fp.mode = next;
    fp.data = data;
    fp.timesEntered = 0;
    return { count: previous, ok: 1 };
  }

  /** The failCommand action for a command about to run, consuming one activation; undefined when it does not apply. */
  check(commandName: string, appName: string | undefined, ns: string): FailAction | undefined {
    const fp = this.points.failCommand;
    if (fp.mode.kind === 'off' || commandName === 'configureFailPoint') return undefined;
    const names = fp.data.failCommands as string[];
    if (!names.some((n) => n === commandName || n.toLowerCase() === commandName.toLowerCase())) return undefined;
    if (!fp.fires(appName, ns)) return undefined;
    const d = fp.data;
    return {
      closeConnection: d.closeConnection === true,
      blockMs: d.blockConnection === true ? Number(d.blockTimeMS ?? 0) : 0,
      ...(typeof d.errorCode === 'number'
        ? { error: { code: d.errorCode, ...(Array.isArray(d.errorLabels) ? { labels: d.errorLabels as string[] } : {}), ...(typeof d.errmsg === 'string' ? { errmsg: d.errmsg } : {}) } }
        : {}),
      ...(isPlainObject(d.writeConcernError) ? { writeConcernError: d.writeConcernError } : {}),
      ...(Array.isArray(d.errorLabels) ? { labels: d.errorLabels as string[] } : {}),
    };
  }

  /**
   * failGetMoreAfterCursorCheckout, evaluated by getMore once the cursor is checked out: the error
   * to throw (code `data.errorCode`, default InternalError), or undefined.
   */
  afterCursorCheckout(appName: string | undefined, ns: string): CommandError | undefined {
    const fp = this.points.failGetMoreAfterCursorCheckout;
    if (!fp.fires(appName, ns)) return undefined;
    const code = typeof fp.data.errorCode === 'number' ? fp.data.errorCode : INTERNAL_ERROR;
    return new CommandError(code, "Hit the 'failGetMoreAfterCursorCheckout' failpoint");
  }
}
