/** How long a loop over costly items holds the thread before letting others have it. */
export const SLICE_MS = 10;

const waiting: Array<() => void> = [];
let granting = false;

/** Steps counted by every caller on this thread since the event loop last turned (`countTowardTurn`). */
let stepsThisTurn = 0;
let turnMarked = false;

/**
 * Counts work just done on this thread toward the current turn of the event loop, whichever request
 * did it: callers that each stay within their own budget can together hold the thread, and
 * `stepsSinceTurn` tells them when to take a turn of their own instead.
 */
export function countTowardTurn(steps: number): void {
  stepsThisTurn += steps;
  if (turnMarked) return;
  turnMarked = true;
  setImmediate(() => {
    stepsThisTurn = 0;
    turnMarked = false;
  });
}

/** Steps counted on this thread since the event loop last turned or a caller was given its own turn. */
export const stepsSinceTurn = (): number => stepsThisTurn;

function grantOne(): void {
  stepsThisTurn = 0;
  const next = waiting.shift();
  // Granted from this turn's immediates, the next one runs in the turn after: sockets are read between.
  if (waiting.length > 0) setImmediate(grantOne);
  else granting = false;
  next?.();
}

/**
 * Waits for a turn of the event loop of the caller's own. Callers that pause at once go on one per
 * turn, with the sockets read between each, not all in the next turn: eight batches that each paused
 * before their next costly event held the thread for eight slices before a health check was read.
 */
export function ownTurn(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    if (granting) return;
    granting = true;
    setImmediate(grantOne);
  });
}

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
      await ownTurn();
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
