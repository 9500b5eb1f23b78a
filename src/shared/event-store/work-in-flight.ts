import { UnavailableError } from '../errors.js';

const storeClosing = () => new UnavailableError('event-store.closing', 'the server is shutting down; retry shortly', 1);

/**
 * A store's appends and transactions that have begun and not ended. Closing refuses new ones (503) and
 * waits for these: a batch whose client is gone still runs to its commit and sync, which must not find
 * the store's files or connections already closed under it.
 */
export function workInFlight() {
  let running = 0;
  let closing = false;
  const idle: Array<() => void> = [];
  const ended = () => {
    running -= 1;
    if (running === 0) for (const wake of idle.splice(0)) wake();
  };

  return {
    run<T>(work: () => Promise<T>): Promise<T> {
      if (closing) return Promise.reject(storeClosing());
      running += 1;
      return work().finally(ended);
    },
    /** Refuses what begins from now on; resolves once what had begun has ended. */
    close(): Promise<void> {
      closing = true;
      return running === 0 ? Promise.resolve() : new Promise((resolve) => idle.push(resolve));
    },
  };
}
