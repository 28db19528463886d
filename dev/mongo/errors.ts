/**
 * Server errors as mongod reports them: numeric `code`, `codeName`, message, optional labels and
 * extra fields (e.g. `keyPattern`/`keyValue` for duplicate keys). A command handler throws a
 * `CommandError`; the dispatcher turns it into an `{ok: 0, ...}` reply.
 */
import type { Document } from 'mongodb';

/** Code names of the codes this server emits (subset of mongod's error_codes.yml). */
export const CODE_NAMES: Record<number, string> = {
  1: 'InternalError',
  2: 'BadValue',
  6: 'HostUnreachable',
  7: 'HostNotFound',
  9: 'FailedToParse',
  11: 'UserNotFound',
  14: 'TypeMismatch',
  20: 'IllegalOperation',
  26: 'NamespaceNotFound',
  27: 'IndexNotFound',
  40: 'ConflictingUpdateOperators',
  43: 'CursorNotFound',
  47: 'NoMatchingDocument',
  48: 'NamespaceExists',
  50: 'MaxTimeMSExpired',
  52: 'DollarPrefixedFieldName',
  59: 'CommandNotFound',
  63: 'StaleShardVersion',
  66: 'ImmutableField',
  67: 'CannotCreateIndex',
  72: 'InvalidOptions',
  73: 'InvalidNamespace',
  85: 'IndexOptionsConflict',
  86: 'IndexKeySpecsConflict',
  89: 'NetworkTimeout',
  91: 'ShutdownInProgress',
  96: 'OperationFailed',
  112: 'WriteConflict',
  115: 'CommandNotSupported',
  121: 'DocumentValidationFailure',
  133: 'FailedToSatisfyReadPreference',
  134: 'ReadConcernMajorityNotAvailableYet',
  136: 'CappedPositionLost',
  150: 'StaleEpoch',
  168: 'InvalidPipelineOperator',
  189: 'PrimarySteppedDown',
  234: 'RetryChangeStream',
  249: 'StaleDbVersion',
  251: 'NoSuchTransaction',
  260: 'InvalidResumeToken',
  262: 'ExceededTimeLimit',
  280: 'ChangeStreamFatalError',
  286: 'ChangeStreamHistoryLost',
  352: 'UnsupportedOpQueryCommand',
  8000: 'AtlasError',
  9001: 'SocketException',
  10107: 'NotWritablePrimary',
  10334: 'BSONObjectTooLarge',
  11000: 'DuplicateKey',
  11600: 'InterruptedAtShutdown',
  11602: 'InterruptedDueToReplStateChange',
  13435: 'NotPrimaryNoSecondaryOk',
  13388: 'StaleConfig',
  13436: 'NotPrimaryOrSecondary',
  40324: 'Location40324',
  40573: 'Location40573',
  40647: 'Location40647',
};

/** Codes in mongod's RetriableError / NetworkError categories (error_codes.yml). */
export const RETRIABLE_CODES = new Set([6, 7, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]);

/** Codes in mongod's NeedRetargettingError category (StaleShardVersion, StaleEpoch, StaleDbVersion, StaleConfig). */
export const NEED_RETARGETTING_CODES = new Set([63, 150, 249, 13388]);

/**
 * Codes mongod labels ResumableChangeStreamError on a change-stream aggregate or getMore
 * (ErrorLabelBuilder::isResumableChangeStreamError): retriable and network errors, those needing
 * retargetting, RetryChangeStream (234) and FailedToSatisfyReadPreference (133).
 */
export const RESUMABLE_CHANGE_STREAM_CODES = new Set([...RETRIABLE_CODES, ...NEED_RETARGETTING_CODES, 234, 133]);

/** Codes in the NonResumableChangeStreamError category. */
export const NON_RESUMABLE_CHANGE_STREAM_CODES = new Set([280, 286]);

/** The labels mongod puts on an error of a change-stream aggregate or getMore with this code. */
export function changeStreamLabels(code: number): string[] {
  if (RESUMABLE_CHANGE_STREAM_CODES.has(code)) return ['ResumableChangeStreamError'];
  if (NON_RESUMABLE_CHANGE_STREAM_CODES.has(code)) return ['NonResumableChangeStreamError'];
  return [];
}

export function codeName(code: number): string {
  return CODE_NAMES[code] ?? `Location${code}`;
}

export class CommandError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly extra: Document = {},
    readonly labels: string[] = [],
  ) {
    super(message);
  }

  /** The `{ok: 0}` body of the reply (without cluster time fields). */
  toReply(): Document {
    const reply: Document = { ok: 0, errmsg: this.message, code: this.code, codeName: codeName(this.code), ...this.extra };
    if (this.labels.length > 0) reply.errorLabels = this.labels;
    return reply;
  }
}

export const badValue = (msg: string) => new CommandError(2, msg);
export const failedToParse = (msg: string) => new CommandError(9, msg);
export const typeMismatch = (msg: string) => new CommandError(14, msg);
export const nsNotFound = (msg: string) => new CommandError(26, msg);
