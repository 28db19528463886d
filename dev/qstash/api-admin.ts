import { ApiError, BadRequestError, NotFoundError } from './errors.js';
import type { ApiResponse, ServerState } from './state.js';
import type { DlqEntry, StoredMessage } from './types.js';
import { dlqView, messageView } from './views.js';

const DEFAULT_COUNT = 100;

function notAllowed(method: string, what: string): never {
  throw new ApiError('method_not_allowed', `${method} ${what} is not supported`, 405);
}

function count(query: URLSearchParams): number {
  const raw = query.get('count');
  if (raw === null) return DEFAULT_COUNT;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new BadRequestError('count must be a positive integer');
  return Number(raw);
}

/** Multi-valued filters: a record matches when its value equals any given value; filters combine with AND. */
function matchesFilters(m: StoredMessage, query: URLSearchParams, extra?: { responseStatus?: number; failedAt?: number }): boolean {
  const anyOf = (name: string, value: string | undefined) => {
    const wanted = query.getAll(name);
    return wanted.length === 0 || (value !== undefined && wanted.includes(value));
  };
  const host = (() => {
    try {
      return new URL(m.url);
    } catch {
      return undefined;
    }
  })();
  const at = extra?.failedAt ?? m.createdAt;
  const from = query.get('fromDate');
  const to = query.get('toDate');
  return (
    anyOf('messageId', m.messageId) &&
    anyOf('url', m.url) &&
    anyOf('queueName', m.queueName) &&
    anyOf('flowControlKey', m.flowControl?.key) &&
    anyOf('callerIp', m.callerIp) &&
    anyOf('host', host?.host) &&
    anyOf('path', host?.pathname) &&
    anyOf('responseStatus', extra?.responseStatus?.toString()) &&
    (query.getAll('label').length === 0 || m.labels.some((l) => query.getAll('label').includes(l))) &&
    (from === null || at >= Number(from)) &&
    (to === null || at <= Number(to))
  );
}

function dlqMatches(state: ServerState, query: URLSearchParams): DlqEntry[] {
  const ids = query.getAll('dlqIds');
  if (ids.length > 0) return ids.map((id) => state.engine.dlqEntry(id)).filter((e): e is DlqEntry => e !== undefined);
  return state.engine
    .dlq()
    .filter((e) => matchesFilters(e.message, query, { responseStatus: e.message.attempts.at(-1)?.status, failedAt: e.failedAt }));
}

/**
 * `GET /v2/dlq` lists (cursor = offset); `DELETE /v2/dlq[/{id}]` removes; `POST /v2/dlq/retry` re-publishes.
 * Bulk delete and retry take the first `count` matches; the entries leave the DLQ, so the returned
 * cursor only says "call again".
 */
export function handleDlq(state: ServerState, method: string, rest: string[], query: URLSearchParams): ApiResponse {
  const [first, second] = rest;
  if (method === 'GET' && first === undefined) {
    const all = dlqMatches(state, query);
    const offset = Number(query.get('cursor') ?? 0) || 0;
    const page = all.slice(offset, offset + count(query));
    const next = offset + page.length;
    return { status: 200, json: { messages: page.map(dlqView), ...(next < all.length ? { cursor: String(next) } : {}) } };
  }
  if (method === 'GET' && first !== undefined && second === undefined) {
    const entry = state.engine.dlqEntry(first);
    if (!entry) throw new NotFoundError(`dlq message ${first} not found`);
    return { status: 200, json: dlqView(entry) };
  }
  if (method === 'DELETE' && first !== undefined) {
    if (!state.engine.deleteDlq(first)) throw new NotFoundError(`dlq message ${first} not found`);
    return { status: 200 };
  }
  const bulk = (): { batch: DlqEntry[]; more: boolean } => {
    const matches = dlqMatches(state, query);
    if (query.getAll('dlqIds').length > 0) return { batch: matches, more: false };
    const n = count(query);
    return { batch: matches.slice(0, n), more: matches.length > n };
  };
  if (method === 'DELETE') {
    const { batch, more } = bulk();
    for (const e of batch) state.engine.deleteDlq(e.dlqId);
    return { status: 200, json: { deleted: batch.length, ...(more ? { cursor: 'next' } : {}) } };
  }
  if (method === 'POST' && first === 'retry') {
    if (second !== undefined) query.append('dlqIds', second);
    const { batch, more } = bulk();
    const responses = batch.map((e) => ({ messageId: state.engine.retryDlq(e.dlqId)!.messageId }));
    state.log(`retried ${responses.length} DLQ message(s)`);
    return { status: 200, json: { responses, ...(more ? { cursor: 'next' } : {}) } };
  }
  return notAllowed(method, '/v2/dlq');
}

/** `GET /v2/messages/{id}` (only while not finished, as in QStash) and cancel by id, ids, filter or all. */
export function handleMessages(state: ServerState, method: string, rest: string[], query: URLSearchParams): ApiResponse {
  const [id] = rest;
  const active = (m: StoredMessage | undefined) => m !== undefined && (m.state === 'pending' || m.state === 'in-flight');
  if (method === 'GET' && id !== undefined) {
    const m = state.engine.get(id);
    if (!active(m)) throw new NotFoundError(`message ${id} not found`);
    return { status: 200, json: messageView(m!) };
  }
  if (method === 'DELETE' && id !== undefined) {
    if (!state.engine.cancel(id)) throw new NotFoundError(`message ${id} not found`);
    return { status: 200, json: { cancelled: 1 } };
  }
  if (method === 'DELETE') {
    const ids = query.getAll('messageIds');
    const targets = ids.length > 0 ? ids : state.engine.all().filter((m) => active(m) && matchesFilters(m, query)).map((m) => m.messageId);
    const cancelled = targets.filter((m) => state.engine.cancel(m)).length;
    return { status: 200, json: { cancelled } };
  }
  return notAllowed(method, '/v2/messages');
}

function queueView(state: ServerState, name: string): Record<string, unknown> {
  const q = state.queues.get(name);
  if (!q) throw new NotFoundError(`queue ${name} not found`);
  return { ...q, lag: state.engine.lag(name) };
}

/** Queue upsert, get, list, delete (cancels its waiting messages), pause and resume. */
export function handleQueues(state: ServerState, method: string, rest: string[], body: Buffer): ApiResponse {
  const [name, action] = rest;
  const now = state.clock.now();
  if (method === 'POST' && name === undefined) {
    let parsed: { queueName?: unknown; parallelism?: unknown; paused?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      throw new BadRequestError('body must be JSON {queueName, parallelism?, paused?}');
    }
    if (typeof parsed.queueName !== 'string' || parsed.queueName === '') throw new BadRequestError('queueName is required');
    const p = parsed.parallelism;
    if (p !== undefined && (typeof p !== 'number' || !Number.isInteger(p) || p < 1)) throw new BadRequestError('parallelism must be a positive integer');
    if (parsed.paused !== undefined && typeof parsed.paused !== 'boolean') throw new BadRequestError('paused must be a boolean');
    state.queues.upsert(parsed.queueName, { parallelism: p ?? 1, paused: parsed.paused ?? false }, now);
    state.engine.pump();
    return { status: 200 };
  }
  if (method === 'GET' && name === undefined) return { status: 200, json: state.queues.list().map((q) => queueView(state, q.name)) };
  if (name === undefined) return notAllowed(method, '/v2/queues');
  if (method === 'GET' && action === undefined) return { status: 200, json: queueView(state, name) };
  if (method === 'DELETE' && action === undefined) {
    queueView(state, name);
    for (const m of state.engine.all()) if (m.queueName === name) state.engine.cancel(m.messageId);
    state.queues.delete(name);
    return { status: 200 };
  }
  if (method === 'POST' && (action === 'pause' || action === 'resume')) {
    queueView(state, name);
    state.queues.upsert(name, { paused: action === 'pause' }, now);
    state.engine.pump();
    return { status: 200 };
  }
  return notAllowed(method, `/v2/queues/${name}`);
}
