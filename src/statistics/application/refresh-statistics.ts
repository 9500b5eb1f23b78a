import type { Clock } from '../../shared/clock.js';
import type { EventStore } from '../../shared/event-store/event-store.js';
import { sumCounters, type Counters } from '../domain/counters.js';
import {
  bucketChanges,
  evolveItemTally,
  mergeNewerTally,
  STATISTICS_EVENT_TYPES,
  type ItemTally,
  type StatisticsEvent,
} from '../domain/item-tally.js';
import type { StatisticsTablesFor } from './ports.js';

/** The part of the event store a refresh needs: the log, and a transaction for the tables. */
export type EventLog = Pick<EventStore, 'readAll' | 'headPosition' | 'transaction'>;

export interface RefreshStatisticsDeps {
  readonly log: EventLog;
  readonly tables: StatisticsTablesFor;
  readonly clock: Clock;
  readonly batchSize?: number;
}

export interface RefreshResult {
  readonly appId: string;
  /** The log was read up to this position; changes the subscriber made after it were kept. */
  readonly upToPosition: number;
  readonly items: number;
  readonly totals: Counters;
  readonly refreshedAt: string;
}

/**
 * Rebuilds one application's statistics from the event store: reads the whole log up to its head in
 * batches, folds that application's items in memory, and replaces its rows in one transaction. The
 * subscriber keeps running meanwhile, so tallies it changed after the position read are merged in
 * rather than overwritten; an event it delivers again later finds its state reached and changes nothing.
 */
export const refreshStatistics =
  ({ log, tables, clock, batchSize = 1000 }: RefreshStatisticsDeps) =>
  async (appId: string): Promise<RefreshResult> => {
    const head = await log.headPosition();
    const tallies = new Map<string, ItemTally>();
    let position = 0;
    while (position < head) {
      const batch = await log.readAll({ after: position, limit: batchSize });
      if (batch.length === 0) break;
      for (const recorded of batch) {
        if (!(STATISTICS_EVENT_TYPES as readonly string[]).includes(recorded.type)) continue;
        const event = { type: recorded.type, data: recorded.data } as StatisticsEvent;
        if (event.data.partner_id !== appId) continue;
        tallies.set(event.data.item_id, evolveItemTally(tallies.get(event.data.item_id), event, recorded.position));
      }
      position = batch.at(-1)?.position ?? head;
    }

    return log.transaction(async (tx) => {
      const store = tables(tx.db);
      for (const newer of await store.talliesChangedAfter(appId, position)) {
        tallies.set(newer.itemId, mergeNewerTally(tallies.get(newer.itemId), newer));
      }
      const buckets = bucketChanges();
      for (const tally of tallies.values()) buckets.count(tally);
      const rows = buckets.list();
      await store.replaceApplication(appId, [...tallies.values()], rows);
      return {
        appId,
        upToPosition: position,
        items: tallies.size,
        // Every counted item is in exactly one weekly bucket: their sum is the application's total.
        totals: sumCounters(rows.filter((row) => row.period === 'weekly').map((row) => row.counters)),
        refreshedAt: clock.now().toISOString(),
      };
    });
  };
