import type { Clock } from '../../shared/clock.js';
import type { EventStore } from '../../shared/event-store/event-store.js';
import { sumCounters } from '../domain/counters.js';
import { bucketChanges } from '../domain/item-tally.js';
import type { StatisticsTablesFor } from './ports.js';
import type { RefreshResult } from './refresh-statistics.js';

export interface RecountStatisticsDeps {
  readonly store: Pick<EventStore, 'transaction'>;
  readonly tables: StatisticsTablesFor;
  readonly clock: Clock;
}

/**
 * The refresh of a statistics service that does not hold the data events (distributed mode): its own
 * copy of what it consumed is one tally per item (state and receipt), kept by its subscriber. The
 * application's buckets are recomputed from those tallies and replaced, in one transaction that keeps
 * the subscriber out meanwhile, so no change is lost or counted twice.
 */
export const recountStatistics =
  ({ store, tables, clock }: RecountStatisticsDeps) =>
  async (appId: string): Promise<RefreshResult> =>
    store.transaction(async (tx) => {
      const own = tables(tx.db);
      await own.excludeWriters();
      const tallies = await own.applicationTallies(appId);
      const buckets = bucketChanges();
      for (const tally of tallies) buckets.count(tally);
      const rows = buckets.list();
      await own.replaceApplication(appId, tallies, rows);
      return {
        appId,
        upToPosition: null,
        items: tallies.length,
        totals: sumCounters(rows.filter((row) => row.period === 'weekly').map((row) => row.counters)),
        refreshedAt: clock.now().toISOString(),
      };
    });
