import { inspect } from 'node:util';

/**
 * A configuration value that must never reach a log, a response or an error message.
 * It prints as `[redacted]` through `String()`, `JSON.stringify` and `util.inspect`;
 * only `reveal()` hands out the value, at the one place that needs it.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [inspect.custom](): string {
    return '[redacted]';
  }
}
