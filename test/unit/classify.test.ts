import { describe, expect, it } from 'vitest';
import { MongoBulkWriteError, MongoNetworkError, MongoServerError, MongoServerSelectionError } from 'mongodb';
import { classifyError, type ErrorClass } from '../../lib/drain/classify.js';
import { fullJitterMs } from '../../lib/platform/backoff.js';
import { AppError, LeaseLostError, PoisonEventError } from '../../lib/platform/errors.js';

function serverError(code: number, labels: string[] = []): MongoServerError {
  const e = new MongoServerError({ ok: 0, code, errmsg: `code ${code}` });
  for (const l of labels) e.addErrorLabel(l);
  return e;
}

describe('classifyError', () => {
  const table: [string, unknown, ErrorClass][] = [
    ['ChangeStreamHistoryLost 286', serverError(286, ['NonResumableChangeStreamError']), 'history_lost'],
    ['CappedPositionLost 136', serverError(136), 'history_lost'],
    ['InvalidResumeToken 260', serverError(260), 'invalid_token'],
    ['network error', new MongoNetworkError('socket closed'), 'transient'],
    // How the driver reports a connection closed under a bulk write: wrapped, no code, no labels.
    ['a driver error wrapped by bulkWrite', new MongoBulkWriteError(new MongoNetworkError('connection 1 to 127.0.0.1:27017 closed'), {} as never), 'transient'],
    ['a bulk write refused with a server code', new MongoBulkWriteError({ message: 'not authorized', code: 13, writeErrors: [] } as never, {} as never), 'fatal'],
    ['server selection timeout', new MongoServerSelectionError('no primary', { type: 'ReplicaSetNoPrimary' } as never), 'transient'],
    ['NotWritablePrimary 10107', serverError(10107), 'transient'],
    ['PrimarySteppedDown 189', serverError(189), 'transient'],
    ['CursorNotFound 43', serverError(43), 'transient'],
    ['unknown code with ResumableChangeStreamError label', serverError(99999, ['ResumableChangeStreamError']), 'transient'],
    ['unknown code with RetryableWriteError label', serverError(99998, ['RetryableWriteError']), 'transient'],
    ['ChangeStreamFatalError 280 (resume token not found)', serverError(280), 'invalid_token'],
    ['BSONObjectTooLarge 10334 (event over 16 MiB)', serverError(10334), 'oversized_event'],
    ['a field too large for a split event fragment 7182500', serverError(7182500), 'oversized_event'],
    ['Unauthorized 13', serverError(13), 'fatal'],
    ['BadValue 2', serverError(2), 'fatal'],
    ['lease lost', new LeaseLostError('org:a'), 'lease_lost'],
    ['poison event', new PoisonEventError('too big'), 'poison'],
    ['bulk write acknowledged fewer jobs than sent', new AppError('dispatch_incomplete', 'x'), 'transient'],
    ['another AppError', new AppError('not_configured', 'x'), 'fatal'],
    ['plain Error', new Error('boom'), 'fatal'],
    ['a string thrown', 'boom', 'fatal'],
    ['null thrown', null, 'fatal'],
  ];
  it.each(table)('when %s → %s', (_name, error, expected) => {
    expect(classifyError(error)).toBe(expected);
  });
});

describe('fullJitterMs', () => {
  it('grows exponentially and stays under the cap', () => {
    expect(fullJitterMs(0, 100, 5000, () => 0.999)).toBe(99);
    expect(fullJitterMs(3, 100, 5000, () => 0.999)).toBe(799);
    expect(fullJitterMs(20, 100, 5000, () => 0.999)).toBe(4995);
  });
  it('uses full jitter (0 at the low end)', () => {
    expect(fullJitterMs(5, 100, 5000, () => 0)).toBe(0);
  });
});
