import { setImmediate as nextTurn } from 'node:timers/promises';

/** How long a loop over costly items holds the thread before letting others have it. */
export const SLICE_MS = 10;

/**
 * Maps items one after another, letting the event loop serve others whenever a slice of the thread has
 * gone: checking and compiling hundreds of rules of large patterns took seconds, and held every request
 * and the health check meanwhile.
 */
export async function mapYielding<T, R>(items: Iterable<T>, map: (item: T) => R, sliceMs = SLICE_MS): Promise<R[]> {
  const mapped: R[] = [];
  let since = performance.now();
  for (const item of items) {
    mapped.push(map(item));
    if (performance.now() - since > sliceMs) {
      await nextTurn();
      since = performance.now();
    }
  }
  return mapped;
}
