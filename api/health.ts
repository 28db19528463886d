import { currentLogger, getContext } from '../lib/platform/context.js';
import { json, route } from '../lib/http/route.js';
import { systemClock } from '../lib/platform/clock.js';
import { withTimeout } from '../lib/platform/deadline.js';

/** Answer within this, so a hung connection shows as unhealthy rather than as a timeout. */
const PING_TIMEOUT_MS = 5_000;

/** `GET /api/health` — liveness and a MongoDB ping; no auth, no configuration in the answer. */
export const { GET, POST, PUT, PATCH, DELETE } = route({
  GET: async () => {
    const started = performance.now();
    try {
      await withTimeout(
        getContext().then((ctx) => ctx.db.command({ ping: 1 })),
        systemClock,
        PING_TIMEOUT_MS,
        () => new Error(`no answer within ${PING_TIMEOUT_MS} ms`),
      );
      return json(200, { ok: true, mongo: { ok: true, pingMs: Math.round(performance.now() - started) } });
    } catch (error) {
      // The reason goes to the function log only; callers learn that it is down, nothing about why.
      (await currentLogger()).error('health check failed', { error });
      return json(503, { ok: false, mongo: { ok: false } });
    }
  },
});
