import { setImmediate as nextTurn } from 'node:timers/promises';

/** How long a loop over costly items holds the thread before letting others have it. */
export const SLICE_MS = 10;

/**
 * A loop's share of the thread: once `sliceMs` have gone since the loop started or last paused,
 * `spent` turns true and `pause()` lets the event loop serve others before the loop goes on. A batch
 * of 2,500 Segment messages held the HTTP thread 50 to 100 ms at a time without it.
 */
export interface ThreadSlice {
  readonly spent: boolean;
  pause(): Promise<void>;
}

export function threadSlice(sliceMs = SLICE_MS): ThreadSlice {
  let since = performance.now();
  return {
    get spent() {
      return performance.now() - since > sliceMs;
    },
    async pause() {
      await nextTurn();
      since = performance.now();
    },
  };
}

/**
 * Maps items one after another, letting the event loop serve others whenever a slice of the thread has
 * gone: checking and compiling hundreds of rules of large patterns took seconds, and held every request
 * and the health check meanwhile.
 */
export async function mapYielding<T, R>(items: Iterable<T>, map: (item: T) => R, sliceMs = SLICE_MS): Promise<R[]> {
  const mapped: R[] = [];
  const slice = threadSlice(sliceMs);
  for (const item of items) {
    mapped.push(map(item));
    if (slice.spent) await slice.pause();
  }
  return mapped;
}
