import { MongoBulkWriteError, MongoError, MongoNetworkError, MongoServerSelectionError, MongoNotConnectedError } from 'mongodb';
import { AppError, LeaseLostError, PoisonEventError } from '../platform/errors.js';

/**
 * What the drain does about an error. One pure function over a table, so that every decision is
 * visible in one place and covered by table tests (test/unit/classify.test.ts).
 *
 * - `transient`     : retry with backoff while the window allows; never advance past the last flush.
 * - `history_lost`  : the oplog no longer holds the saved position → reconcile by scanning.
 * - `invalid_token` : the saved token cannot be used → reconcile, flagged.
 * - `lease_lost`    : another invocation owns the stream → stop writing at once.
 * - `poison`        : one event can never be dispatched → dead-letter it and go on.
 * - `oversized_event`: the server cannot return the next event (over 16 MiB) → find it, dead-letter
 *                     its position and go on after it (lib/drain/large.ts).
 * - `fatal`         : configuration or permission problems → stop the run, count a failure.
 */
export type ErrorClass = 'transient' | 'history_lost' | 'invalid_token' | 'lease_lost' | 'poison' | 'oversized_event' | 'fatal';

/** Server codes meaning the oplog no longer covers the resume point. */
export const HISTORY_LOST_CODES = new Set([286 /* ChangeStreamHistoryLost */, 136 /* CappedPositionLost */]);
/**
 * Server codes meaning the saved resume point is refused: 260 InvalidResumeToken (malformed or for
 * another stream) and 280 ChangeStreamFatalError, which mongod raises when the resume token's event
 * is not found in the oplog ("cannot resume stream; the resume token was not found"). Neither is
 * resumable (the driver spec resumes only on ResumableChangeStreamError), and retrying the same
 * token fails the same way, so the stream is recovered by a scan (`invalid_token`).
 */
export const INVALID_TOKEN_CODES = new Set([260 /* InvalidResumeToken */, 280 /* ChangeStreamFatalError */]);
/**
 * Server codes meaning one change event cannot be returned: 10334 BSONObjectTooLarge (an event over
 * 16 MiB without `$changeStreamSplitLargeEvent`) and 7182500 (with it, one field alone does not fit
 * in a fragment). Docs: "Large Change Events"; server: change_stream_split_event_helpers.cpp.
 */
export const OVERSIZED_EVENT_CODES = new Set([10334 /* BSONObjectTooLarge */, 7182500]);

/** Server codes that mean "try again later" (network, elections, time limits, routing). */
export const TRANSIENT_CODES = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  43, // CursorNotFound (cursor reaped; reopen from the saved token)
  50, // MaxTimeMSExpired
  63, // StaleShardVersion
  89, // NetworkTimeout
  91, // ShutdownInProgress
  133, // FailedToSatisfyReadPreference
  150, // StaleEpoch
  189, // PrimarySteppedDown
  234, // RetryChangeStream
  262, // ExceededTimeLimit
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13388, // StaleConfig
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
]);

const TRANSIENT_LABELS = ['ResumableChangeStreamError', 'RetryableWriteError', 'TransientTransactionError'];

function errorCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

function hasLabel(error: unknown, label: string): boolean {
  return error instanceof MongoError && error.hasErrorLabel(label);
}

function bulkWriteErrors(error: MongoBulkWriteError): unknown[] {
  const w = error.writeErrors as unknown;
  return Array.isArray(w) ? w : w ? [w] : [];
}

export function classifyError(error: unknown): ErrorClass {
  if (error instanceof LeaseLostError) return 'lease_lost';
  if (error instanceof PoisonEventError) return 'poison';
  // A bulk write that acknowledged fewer operations than it was sent: replay from the saved token.
  if (error instanceof AppError && error.code === 'dispatch_incomplete') return 'transient';
  const code = errorCode(error);
  if (code !== undefined && HISTORY_LOST_CODES.has(code)) return 'history_lost';
  if (code !== undefined && INVALID_TOKEN_CODES.has(code)) return 'invalid_token';
  if (code !== undefined && OVERSIZED_EVENT_CODES.has(code)) return 'oversized_event';
  if (
    error instanceof MongoNetworkError ||
    error instanceof MongoServerSelectionError ||
    error instanceof MongoNotConnectedError
  ) {
    return 'transient';
  }
  if (code !== undefined && TRANSIENT_CODES.has(code)) return 'transient';
  // The driver wraps an error of its own during a bulk write (a closed connection, a cleared pool)
  // in a MongoBulkWriteError with no code, no write error and, at times, none of the original's
  // labels (mongodb lib/bulk/common.js, "a driver related error not a bulk op error"): nothing is
  // known to be written, so the batch is replayed from the saved token like any network error.
  if (error instanceof MongoBulkWriteError && code === undefined && !error.writeConcernError && bulkWriteErrors(error).length === 0) return 'transient';
  if (TRANSIENT_LABELS.some((label) => hasLabel(error, label))) return 'transient';
  return 'fatal';
}

