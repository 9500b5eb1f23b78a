import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.js';
import type { IdempotencyLogFor } from './ports.js';

export interface IdempotencyPrunerDeps {
  readonly db: Kysely<object>;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly idempotency: IdempotencyLogFor;
  /** How long a record answers its key (IDEMPOTENCY_WINDOW_HOURS). */
  readonly windowMs: number;
  readonly intervalMs?: number;
  /** Records deleted a statement: short enough that the writer is never held for long. */
  readonly slice?: number;
}

export interface IdempotencyPruner {
  start(): void;
  /** Ends the pass under way after its current slice. */
  stop(): Promise<void>;
  /** One whole pass: deletes every record past its window; answers how many. */
  prune(): Promise<number>;
}

const TEN_MINUTES = 10 * 60 * 1000;
/**
 * Records are kept this long past their window: a request that still finds one within its window
 * (its clock behind the pruner's, on another replica) must not see it deleted before it reads it.
 */
const MARGIN_MS = 60 * 60 * 1000;

/**
 * Deletes idempotency records an hour after their window has passed: a key is only remembered for the window,
 * and without this every `Idempotency-Key` and message id stayed in the table for good. A pass runs
 * a second after the start and then every ten minutes, in slices that each commit on their own, letting
 * other work have the writer in between. A claim that meets a record deleted under it inserts anew.
 */
export function idempotencyPruner(deps: IdempotencyPrunerDeps): IdempotencyPruner {
  const intervalMs = deps.intervalMs ?? TEN_MINUTES;
  const slice = deps.slice ?? 500;
  let timer: NodeJS.Timeout | undefined;
  let started = false;
  let stopped = false;
  let pass: Promise<unknown> = Promise.resolve();

  const prune = async () => {
    const notBefore = new Date(deps.clock.now().getTime() - deps.windowMs - MARGIN_MS).toISOString();
    let forgotten = 0;
    for (;;) {
      const deleted = await deps.idempotency(deps.db).forgetBefore(notBefore, slice);
      forgotten += deleted;
      if (deleted < slice || stopped) return forgotten;
      await nextTurn();
    }
  };

  const schedule = (delayMs: number) => {
    timer = setTimeout(() => {
      pass = prune().then(
        (forgotten) => forgotten > 0 && deps.logger.debug({ forgotten }, 'deleted idempotency records past their window'),
        (error: unknown) => deps.logger.warn({ err: error }, 'could not delete idempotency records past their window; trying again later'),
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
