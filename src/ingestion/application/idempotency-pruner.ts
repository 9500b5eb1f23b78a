import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.js';
import { slicedPruner, type SlicedPruner } from '../../shared/sliced-pruner.js';
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

/** A pass deletes every record past its window; `prune` answers how many. */
export type IdempotencyPruner = SlicedPruner;

/**
 * Records are kept this long past their window: a request that still finds one within its window
 * (its clock behind the pruner's, on another replica) must not see it deleted before it reads it.
 */
const MARGIN_MS = 60 * 60 * 1000;

/**
 * Deletes idempotency records an hour after their window has passed: a key is only remembered for the window,
 * and without this every `Idempotency-Key` and message id stayed in the table for good. A claim that
 * meets a record deleted under it inserts anew.
 */
export function idempotencyPruner(deps: IdempotencyPrunerDeps): IdempotencyPruner {
  return slicedPruner({
    clock: deps.clock,
    logger: deps.logger,
    what: 'idempotency records past their window',
    slice: deps.slice ?? 500,
    ...(deps.intervalMs === undefined ? {} : { intervalMs: deps.intervalMs }),
    deleteSlice: (limit, now) =>
      deps.idempotency(deps.db).forgetBefore(new Date(now.getTime() - deps.windowMs - MARGIN_MS).toISOString(), limit),
  });
}
