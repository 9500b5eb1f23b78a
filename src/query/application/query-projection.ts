import type { Subscriber } from '../../shared/subscriptions/subscriber.js';
import { evolveItemView, QUERY_EVENT_TYPES, type ItemView, type ViewEvent } from '../domain/item-view.js';
import type { ItemViewsFor } from './ports.js';

/**
 * Keeps the /query view. Folding is idempotent (every event sets state, none accumulates), so the
 * same event delivered twice changes nothing; a batch reads and writes each touched item once.
 */
export function queryProjection(views: ItemViewsFor, observe?: (event: ViewEvent, view: ItemView) => void): Subscriber {
  return {
    name: 'query',
    handles: QUERY_EVENT_TYPES,
    async handle(events, tx) {
      const store = views(tx.db);
      const touched = await store.getMany([...new Set(events.map((e) => (e.data as { item_id: string }).item_id))]);
      for (const event of events) {
        const dataEvent = { type: event.type, data: event.data } as ViewEvent;
        const next = evolveItemView(touched.get(dataEvent.data.item_id), dataEvent, event.recordedAt);
        touched.set(next.id, next);
        observe?.(dataEvent, next);
      }
      await store.save([...touched.values()]);
    },
    async reset(tx) {
      await views(tx.db).clear();
    },
  };
}
