import { createHash, timingSafeEqual } from 'node:crypto';
import { ApiError, BadRequestError, NotFoundError, UnauthorizedError } from './errors.js';
import { handleDlq, handleMessages, handleQueues } from './api-admin.js';
import { newSigningKey } from './keys.js';
import { dedupKey, parsePublish } from './message.js';
import type { ApiRequest, ApiResponse, ServerState } from './state.js';

function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** Bearer token from the header, or the `qstash_token` query parameter QStash also accepts. */
function authorize(state: ServerState, headers: Headers, query: URLSearchParams): void {
  const auth = headers.get('authorization');
  const given = auth?.match(/^Bearer\s+(.+)$/i)?.[1]?.trim() ?? query.get('qstash_token') ?? undefined;
  if (given === undefined) throw new UnauthorizedError('missing Authorization: Bearer <QSTASH_TOKEN>');
  if (!sameSecret(given, state.token)) throw new UnauthorizedError('invalid token');
}

/** The raw query with `qstash_token` removed; the rest belongs to the destination URL and is kept byte-for-byte. */
function destinationQuery(rawQuery: string): string {
  if (!/(^|&)qstash_token=/.test(rawQuery)) return rawQuery;
  return rawQuery
    .split('&')
    .filter((p) => !p.startsWith('qstash_token='))
    .join('&');
}

/** Creates one message (or finds its duplicate) and answers like QStash: 200, or 202 with `deduplicated: true`. */
export function publishOne(
  state: ServerState,
  destination: string,
  headers: Headers,
  body: Buffer,
  queueName: string | undefined,
  callerIp: string | undefined,
): ApiResponse {
  const now = state.clock.now();
  const spec = parsePublish({ destination, headers, body, nowMs: now, queueName, callerIp }, state.limits);
  const key = dedupKey(headers, spec);
  const existing = key === undefined ? undefined : state.dedup.lookup(key, now);
  if (existing !== undefined) {
    state.log(`publish to ${spec.url} deduplicated (${existing})`);
    return { status: 202, json: { messageId: existing, url: spec.url, deduplicated: true } };
  }
  if (queueName !== undefined) state.queues.ensure(queueName, now);
  const msg = state.engine.add(spec);
  if (key !== undefined) state.dedup.remember(key, msg.messageId, now);
  state.log(`published ${msg.messageId} → ${spec.method} ${spec.url}${queueName ? ` (queue ${queueName})` : ''}`);
  return { status: 200, json: { messageId: msg.messageId, url: spec.url } };
}

interface BatchEntry {
  destination: string;
  headers?: Record<string, string>;
  body?: string;
  queue?: string;
}

function parseBatch(body: Buffer): BatchEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new BadRequestError('batch body must be a JSON array');
  }
  if (!Array.isArray(parsed)) throw new BadRequestError('batch body must be a JSON array');
  if (parsed.length === 0) throw new BadRequestError('batch must contain at least one message');
  return parsed.map((e: unknown, i) => {
    const entry = e as Partial<BatchEntry> | null;
    if (!entry || typeof entry !== 'object' || typeof entry.destination !== 'string') {
      throw new BadRequestError(`batch[${i}]: destination (string) is required`);
    }
    if (entry.body !== undefined && typeof entry.body !== 'string') throw new BadRequestError(`batch[${i}]: body must be a string`);
    if (entry.headers !== undefined && (typeof entry.headers !== 'object' || entry.headers === null)) {
      throw new BadRequestError(`batch[${i}]: headers must be an object`);
    }
    return entry as BatchEntry;
  });
}

/** Each entry succeeds or fails on its own; a failing entry answers `{error}` in its slot. */
function publishBatch(state: ServerState, req: ApiRequest): ApiResponse {
  const entries = parseBatch(req.body);
  const results = entries.map((entry) => {
    try {
      const headers = new Headers();
      for (const [k, v] of Object.entries(entry.headers ?? {})) headers.set(k, String(v));
      const res = publishOne(state, entry.destination, headers, Buffer.from(entry.body ?? '', 'utf8'), entry.queue, req.remoteAddress);
      return res.json;
    } catch (err) {
      if (err instanceof ApiError) return { error: err.message };
      throw err;
    }
  });
  return { status: 200, json: results };
}

function methodNotAllowed(method: string, path: string): never {
  throw new ApiError('method_not_allowed', `${method} ${path} is not supported`, 405);
}

async function route(state: ServerState, req: ApiRequest): Promise<ApiResponse> {
  const q = req.target.indexOf('?');
  const rawPath = q === -1 ? req.target : req.target.slice(0, q);
  const rawQuery = q === -1 ? '' : req.target.slice(q + 1);
  const query = new URLSearchParams(rawQuery);
  if (!rawPath.startsWith('/v2/')) throw new NotFoundError(`no route for ${req.method} ${rawPath}`);
  authorize(state, req.headers, query);

  for (const prefix of ['/v2/publish/', '/v2/enqueue/']) {
    if (!rawPath.startsWith(prefix)) continue;
    if (req.method !== 'POST') methodNotAllowed(req.method, rawPath);
    let rest = rawPath.slice(prefix.length);
    const dq = destinationQuery(rawQuery);
    let queueName: string | undefined;
    if (prefix === '/v2/enqueue/') {
      const slash = rest.indexOf('/');
      queueName = decodeURIComponent(slash === -1 ? rest : rest.slice(0, slash));
      if (queueName === '') throw new BadRequestError('queue name is missing');
      rest = slash === -1 ? '' : rest.slice(slash + 1);
    }
    return publishOne(state, rest + (dq ? `?${dq}` : ''), req.headers, req.body, queueName, req.remoteAddress);
  }

  const segments = rawPath.slice('/v2/'.length).split('/').map(decodeURIComponent);
  const [resource, ...rest] = segments;
  switch (resource) {
    case 'batch':
      if (req.method !== 'POST' || rest.length > 0) methodNotAllowed(req.method, rawPath);
      return publishBatch(state, req);
    case 'keys':
      if (req.method === 'GET' && rest.length === 0) return { status: 200, json: { ...state.keys } };
      if (req.method === 'POST' && rest[0] === 'rotate') {
        state.keys = { current: state.keys.next, next: newSigningKey() };
        state.log('signing keys rotated');
        return { status: 200, json: { ...state.keys } };
      }
      return methodNotAllowed(req.method, rawPath);
    case 'dlq':
      return handleDlq(state, req.method, rest, query);
    case 'messages':
      return handleMessages(state, req.method, rest, query);
    case 'queues':
      return handleQueues(state, req.method, rest, req.body);
    default:
      throw new NotFoundError(`no route for ${req.method} ${rawPath} (not implemented by the local QStash server)`);
  }
}

/** Routes one request; every error becomes a JSON `{error}` with its status. */
export async function handleApi(state: ServerState, req: ApiRequest): Promise<ApiResponse> {
  try {
    return await route(state, req);
  } catch (err) {
    if (err instanceof ApiError) return { status: err.status, json: { error: err.message } };
    if (err instanceof URIError) return { status: 400, json: { error: 'malformed percent-encoding in path' } };
    state.log(`internal error on ${req.method} ${req.target.split('?')[0]}: ${String(err)}`);
    return { status: 500, json: { error: 'internal error' } };
  }
}
