import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.js';
import { slicedPruner, type SlicedPruner } from '../../shared/sliced-pruner.js';
import type { DeliveryHistoryFor } from './ports.js';

export interface DeliveryPrunerDeps {
  readonly db: Kysely<object>;
  readonly clock: Clock;
  readonly logger: Pick<Logger, 'debug' | 'warn'>;
  readonly history: DeliveryHistoryFor;
  /** How long a succeeded delivery is kept after its last change (DELIVERY_RETENTION_DAYS); 0 keeps them for ever. */
  readonly retentionMs: number;
  readonly intervalMs?: number;
  /** Deliveries deleted a transaction: few enough that the writer is never held for long. */
  readonly slice?: number;
}

/** A pass deletes every succeeded delivery past the retention, and those of replay jobs cancelled as long ago, with their attempts; `prune` answers how many. */
export type DeliveryPruner = SlicedPruner;

export const DEFAULT_DELIVERY_RETENTION_MS = 30 * 24 * 3600_000;

/**
 * Deletes the deliveries that succeeded longer than the retention ago, with their attempts: without
 * this, every delivery and attempt stayed in the routing tables for good (about one row of each per
 * item routed), and likewise those a cancelled replay job left unsent. Dead letters wait for an operator's replay and deliveries still to go wait for their
 * attempts: both are kept. With a retention of 0 it never runs.
 */
export function deliveryPruner(deps: DeliveryPrunerDeps): DeliveryPruner {
  const pruner = slicedPruner({
    clock: deps.clock,
    logger: deps.logger,
    what: 'succeeded and cancelled deliveries past their retention',
    slice: deps.slice ?? 1000,
    ...(deps.intervalMs === undefined ? {} : { intervalMs: deps.intervalMs }),
    deleteSlice: (limit, now) => deps.history(deps.db).forgetBefore(new Date(now.getTime() - deps.retentionMs).toISOString(), limit),
  });
  if (deps.retentionMs > 0) return pruner;
  return { start: () => undefined, stop: () => Promise.resolve(), prune: () => Promise.resolve(0) };
}
