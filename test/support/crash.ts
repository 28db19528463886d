import type { Db } from 'mongodb';

/** The error a "crashed process" sees from every database call after the crash point. */
export class SimulatedCrash extends Error {
  override readonly name = 'SimulatedCrash';
}

/**
 * A Db whose collections stop working after `crashAt` operations, as if the process died there:
 * the operation at the crash point and every later one throw, so nothing after it is written
 * (not even the lease release). `operations()` tells how many ran before the crash.
 */
export function crashingDb(db: Db, crashAt: number): { db: Db; operations(): number; crashed(): boolean } {
  let count = 0;
  let crashed = false;
  const wrapCollection = (coll: object) =>
    new Proxy(coll, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function' || typeof prop !== 'string' || prop.startsWith('_')) return value;
        return (...args: unknown[]) => {
          count++;
          if (count >= crashAt) {
            crashed = true;
            const err = new SimulatedCrash(`crashed at operation ${count} (${prop})`);
            // Keep the async/sync shape of the real method: cursors are sync, writes return promises.
            if (prop === 'find' || prop === 'aggregate' || prop === 'watch') throw err;
            return Promise.reject(err);
          }
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  const proxy = new Proxy(db, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'collection') return (...args: unknown[]) => wrapCollection((value as (...a: unknown[]) => object).apply(target, args));
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { db: proxy, operations: () => count, crashed: () => crashed };
}
