import type { Clock } from './clock.js';
import type { DedupWindow } from './dedup.js';
import type { DeliveryEngine } from './engine.js';
import type { PublishLimits } from './message.js';
import type { QueueRegistry } from './queues.js';

/** Everything a request handler of the local QStash server reads or changes. */
export interface ServerState {
  token: string;
  /** Signing keys; `POST /v2/keys/rotate` replaces them. */
  keys: { current: string; next: string };
  engine: DeliveryEngine;
  queues: QueueRegistry;
  dedup: DedupWindow;
  clock: Clock;
  limits: PublishLimits;
  log: (line: string) => void;
}

/** A request as the router sees it: `target` is the raw request-target, because publish destinations live in it. */
export interface ApiRequest {
  method: string;
  target: string;
  headers: Headers;
  body: Buffer;
  remoteAddress?: string;
}

/** `json` undefined means an empty body. */
export interface ApiResponse {
  status: number;
  json?: unknown;
}
