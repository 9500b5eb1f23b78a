import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Clock } from './clock.js';

export interface SlicedPruner {
  start(): void;
  /** Ends the pass under way after its current slice. */
  stop(): Promise<void>;
  /** One whole pass; answers how many rows it deleted. */
  prune(): Promise<number>;
}

export interface SlicedPrunerOptions {
  readonly clock: Clock;
  readonly logger: Pick<Logger, 'debug' | 'warn'>;
  /** What is deleted, for the log: "idempotency records past their window". */
  readonly what: string;
  /** Deletes at most `limit` rows found stale at `passStartedAt`, in a commit of its own; answers how many. */
  readonly deleteSlice: (limit: number, passStartedAt: Date) => Promise<number>;
  /** Rows deleted a commit: few enough that the writer (SQLite has one) is never held for long. */
  readonly slice: number;
  readonly intervalMs?: number;
}

const TEN_MINUTES = 10 * 60 * 1000;

/**
 * Deletes what a table no longer needs, a pass a second after the start and then every ten minutes,
 * in slices that each commit on their own with the event loop let go in between: other work has the
 * writer between them, however much a pass has to delete.
 */
export function slicedPruner(options: SlicedPrunerOptions): SlicedPruner {
  const intervalMs = options.intervalMs ?? TEN_MINUTES;
  let timer: NodeJS.Timeout | undefined;
  let started = false;
  let stopped = false;
  let pass: Promise<unknown> = Promise.resolve();

  const prune = async () => {
    const passStartedAt = options.clock.now();
    let deleted = 0;
    for (;;) {
      const inSlice = await options.deleteSlice(options.slice, passStartedAt);
      deleted += inSlice;
      if (inSlice < options.slice || stopped) return deleted;
      await nextTurn();
    }
  };

  const schedule = (delayMs: number) => {
    timer = setTimeout(() => {
      pass = prune().then(
        (deleted) => deleted > 0 && options.logger.debug({ deleted }, `deleted ${options.what}`),
        (error: unknown) => options.logger.warn({ err: error }, `could not delete ${options.what}; trying again later`),
      );
      void pass.then(() => started && schedule(intervalMs));
    }, delayMs);
    timer.unref();
  };

  return {
    start() {
      if (started) return;
      started = true;
      stopped = false;
      // A second on: not in the way of the start's own work.
      schedule(Math.min(intervalMs, 1000));
    },
    async stop() {
      started = false;
      stopped = true;
      clearTimeout(timer);
      await pass;
    },
    prune,
  };
}
