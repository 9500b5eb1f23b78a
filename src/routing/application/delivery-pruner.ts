import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../../shared/clock.js';
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

export interface DeliveryPruner {
  start(): void;
  /** Ends the pass under way after its current slice. */
  stop(): Promise<void>;
  /** One whole pass: deletes every succeeded delivery past the retention, with its attempts; answers how many. */
  prune(): Promise<number>;
}

const TEN_MINUTES = 10 * 60 * 1000;
export const DEFAULT_DELIVERY_RETENTION_MS = 30 * 24 * 3600_000;

/**
 * Deletes the deliveries that succeeded longer than the retention ago, with their attempts: without
 * this, every delivery and attempt stayed in the routing tables for good (about one row of each per
 * item routed). Dead letters wait for an operator's replay and deliveries still to go wait for their
 * attempts: both are kept. A pass runs a second after the start and then every ten minutes, in
 * slices that each commit on their own, letting other work have the writer (SQLite has one) in between.
 */
export function deliveryPruner(deps: DeliveryPrunerDeps): DeliveryPruner {
  const intervalMs = deps.intervalMs ?? TEN_MINUTES;
  const slice = deps.slice ?? 1000;
  let timer: NodeJS.Timeout | undefined;
  let started = false;
  let stopped = false;
  let pass: Promise<unknown> = Promise.resolve();

  const prune = async () => {
    if (deps.retentionMs <= 0) return 0;
    const before = new Date(deps.clock.now().getTime() - deps.retentionMs).toISOString();
    let forgotten = 0;
    for (;;) {
      const deleted = await deps.history(deps.db).forgetSucceededBefore(before, slice);
      forgotten += deleted;
      if (deleted < slice || stopped) return forgotten;
      await nextTurn();
    }
  };

  const schedule = (delayMs: number) => {
    timer = setTimeout(() => {
      pass = prune().then(
        (forgotten) => forgotten > 0 && deps.logger.debug({ forgotten }, 'deleted succeeded deliveries past their retention'),
        (error: unknown) =>
          deps.logger.warn({ err: error }, 'could not delete succeeded deliveries past their retention; trying again later'),
      );
      void pass.then(() => started && schedule(intervalMs));
    }, delayMs);
    timer.unref();
  };

  return {
    start() {
      if (started || deps.retentionMs <= 0) return;
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
