import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import * as http from 'node:http';
import * as https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { Config } from '../platform/config.js';
import { assertDestination, EMPTY_ALLOW_LIST, type AllowList } from '../platform/destination.js';

/**
 * A `fetch` for webhook requests that connects only to destinations `assertDestination` admits
 * (lib/platform/destination.ts). The check runs inside the socket's DNS `lookup`, on the very addresses the
 * connection is made to, so a host name cannot resolve to one address for a check and another for
 * the connection; an IP-literal URL (which Node connects to without a lookup) is checked before the
 * request starts. Refusals reject with `DestinationRefusedError`.
 *
 * Built on `node:http`/`node:https` because Node's global fetch offers no per-request `lookup`
 * without the `undici` package. It supports what webhook steps use: any method, headers, a body,
 * `signal`; redirects are never followed (the 3xx answer is returned, as with `redirect: 'manual'`),
 * since following one would reach a destination the workflow never named. Connections are kept
 * alive per allow list.
 */
export function guardedFetch(allow: AllowList): typeof fetch {
  const lookup = checkedLookup(allow);
  const agents = { 'http:': new http.Agent({ keepAlive: true, lookup }), 'https:': new https.Agent({ keepAlive: true, lookup }) };
  return async (input, init) => {
    const { url, method, headers, body } = await requestParts(input, init);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`unsupported protocol ${url.protocol}`);
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    if (isIP(host)) assertDestination(allow, host, host);
    if (body) headers['content-length'] = String(body.length);
    const signal = init?.signal ?? undefined;
    signal?.throwIfAborted();
    const module = url.protocol === 'https:' ? https : http;
    return new Promise<Response>((resolve, reject) => {
      const req = module.request(url, { method, headers, agent: agents[url.protocol as 'http:' | 'https:'], signal }, (res) => {
        const responseHeaders = new Headers();
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) responseHeaders.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
        const status = res.statusCode ?? 502;
        const empty = method === 'HEAD' || status === 204 || status === 304;
        if (empty) res.resume();
        resolve(new Response(empty ? null : webStream(res), { status, statusText: res.statusMessage ?? '', headers: responseHeaders }));
      });
      req.on('error', (error) => reject(error instanceof Error && error.name === 'DestinationRefusedError' ? error : new TypeError('fetch failed', { cause: error })));
      req.end(body ?? undefined);
    });
  };
}

/**
 * A `dns.lookup` that refuses, with `DestinationRefusedError`, any answer containing an address
 * the allow list does not admit. Every address is checked, not only the first: the socket may try
 * each of them (Happy Eyeballs).
 */
export function checkedLookup(allow: AllowList): LookupFunction {
  return ((hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, []);
      try {
        for (const a of addresses) assertDestination(allow, hostname, a.address);
      } catch (refused) {
        return callback(refused as NodeJS.ErrnoException, []);
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), []);
      return callback(null, first.address, first.family);
    });
  }) as LookupFunction;
}

/**
 * What fetch would send, checked as fetch checks it (URL without credentials, method, header names
 * and values), throwing the same kind of TypeError before anything is sent. A string or byte body
 * with a string or URL input (what the webhook step sends) is taken directly; anything else goes
 * through the standard `Request`.
 */
async function requestParts(input: Parameters<typeof fetch>[0], init: RequestInit | undefined) {
  const raw = init?.body;
  if ((typeof input === 'string' || input instanceof URL) && (raw === undefined || raw === null || typeof raw === 'string' || raw instanceof Uint8Array)) {
    const url = new URL(input);
    if (url.username || url.password) throw new TypeError('Request cannot be constructed from a URL that includes credentials');
    const method = (init?.method ?? 'GET').toUpperCase();
    const checked = new Headers(init?.headers);
    if (typeof raw === 'string' && !checked.has('content-type')) checked.set('content-type', 'text/plain;charset=UTF-8');
    return { url, method, headers: headerRecord(checked), body: raw === undefined || raw === null ? null : Buffer.from(raw) };
  }
  const request = new Request(input, init);
  const body = request.body ? Buffer.from(await request.arrayBuffer()) : null;
  return { url: new URL(request.url), method: request.method, headers: headerRecord(request.headers), body };
}

function headerRecord(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    out[name] = value;
  });
  return out;
}

/** Bodies up to this size are read to the end when a caller cancels, so the connection is reused. */
const DRAIN_ON_CANCEL_BYTES = 64 * 1024;

/**
 * The response body as a web stream. Cancelling it (as the webhook step does on a 2xx, or after
 * reading the start of an error) reads a small remainder to the end so the kept-alive connection
 * can carry the next request; a large or unknown-length remainder closes the connection instead.
 */
function webStream(res: http.IncomingMessage): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      res.on('data', (chunk: Buffer) => {
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 1) <= 0) res.pause();
      });
      res.on('end', () => controller.close());
      res.on('error', (error) => controller.error(error));
    },
    pull() {
      res.resume();
    },
    cancel() {
      res.removeAllListeners('data');
      const length = Number(res.headers['content-length']);
      if (res.complete || (Number.isFinite(length) && length <= DRAIN_ON_CANCEL_BYTES)) res.resume();
      else res.destroy();
    },
  });
}

const byConfig = new WeakMap<Config, typeof fetch>();

/** The processor's default webhook client: `guardedFetch` over `WEBHOOK_ALLOW_HOSTS`, one per config. */
export function webhookFetch(config: Config): typeof fetch {
  let f = byConfig.get(config);
  if (!f) {
    f = guardedFetch(config.WEBHOOK_ALLOW_HOSTS ?? EMPTY_ALLOW_LIST);
    byConfig.set(config, f);
  }
  return f;
}
