import type { Subscriber } from '../../shared/subscriptions/subscriber.js';
import { bucketChanges, evolveItemTally, STATISTICS_EVENT_TYPES, type ItemTally, type StatisticsEvent } from '../domain/item-tally.js';
import type { StatisticsTablesFor } from './ports.js';

/**
 * Keeps the counters per application, event type and bucket. A batch reads the tallies of the items
 * it touches, folds its events into them in memory, and writes each changed tally and each touched
 * bucket once. An item's change moves its counters by the difference between its old and new tally,
 * so a repeated event (no change) moves nothing and total = processed + failed + pending holds.
 */
export function statisticsSubscriber(tables: StatisticsTablesFor): Subscriber {
  return {
    name: 'statistics',
    handles: STATISTICS_EVENT_TYPES,
    async handle(events, tx) {
      const store = tables(tx.db);
      const statisticsEvents = events.map((event) => ({
        position: event.position,
        event: { type: event.type, data: event.data } as StatisticsEvent,
      }));
      const itemIds = [...new Set(statisticsEvents.map(({ event }) => event.data.item_id))];
      // Read, fold and add the difference: another replica must not count the same items meanwhile.
      await store.lockTallies(itemIds);
      const tallies = await store.tallies(itemIds);
      const changes = bucketChanges();
      const changed = new Map<string, ItemTally>();
      for (const { event, position } of statisticsEvents) {
        const before = tallies.get(event.data.item_id);
        const after = evolveItemTally(before, event, position);
        if (after === before) continue;
        changes.count(before, -1);
        changes.count(after, 1);
        tallies.set(after.itemId, after);
        changed.set(after.itemId, after);
      }
      await store.saveTallies([...changed.values()]);
      await store.addToBuckets(changes.list());
    },
    async reset(tx) {
      await tables(tx.db).clear();
    },
  };
}
