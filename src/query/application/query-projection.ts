import type { Kysely } from 'kysely';
import type { RecordedEvent } from '../../shared/events.js';
import type { Subscriber } from '../../shared/subscriptions/subscriber.js';
import { evolveItemView, QUERY_EVENT_TYPES, type ViewEvent } from '../domain/item-view.js';
import type { ItemViewsFor } from './ports.js';

/** Keeps a copy of the events it folds, where the log they come from is out of reach (distributed mode). */
export type HistoryRecorderFor = (db: Kysely<object>) => { record(events: readonly RecordedEvent[]): Promise<void> };

/**
 * Keeps the /query view. Folding is idempotent (every event sets state, none accumulates), so the
 * same event delivered twice changes nothing; a batch reads and writes each touched item once.
 */
export function queryProjection(views: ItemViewsFor, history?: HistoryRecorderFor): Subscriber {
  return {
    name: 'query',
    handles: QUERY_EVENT_TYPES,
    // Every event sets state by stage or by attempt (see evolveItemView), and the history ignores copies.
    idempotent: true,
    async handle(events, tx) {
      const store = views(tx.db);
      const ids = [...new Set(events.map((e) => (e.data as { item_id: string }).item_id))];
      // Read, fold and write back: another replica must not fold the same items meanwhile.
      await store.lockForUpdate(ids);
      const touched = await store.getMany(ids);
      for (const event of events) {
        const viewEvent = { type: event.type, data: event.data } as ViewEvent;
        const next = evolveItemView(touched.get(viewEvent.data.item_id), viewEvent, event.recordedAt);
        touched.set(next.id, next);
      }
      await store.save([...touched.values()]);
      await history?.(tx.db).record(events);
    },
    async reset(tx) {
      await views(tx.db).clear();
    },
  };
}
