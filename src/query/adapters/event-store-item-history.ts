import type { EventStore } from '../../shared/event-store/event-store.js';
import { dataStreamId } from '../../shared/contracts/data-events.js';
import type { ItemHistory } from '../application/ports.js';
import { QUERY_EVENT_TYPES } from '../domain/item-view.js';

/** In embedded mode the history is the item's stream in the shared log: nothing is copied. */
export function eventStoreItemHistory(store: EventStore): ItemHistory {
  const of = async (itemId: string) => {
    const events = await store.readStream(dataStreamId(itemId));
    return events
      .filter((event) => (QUERY_EVENT_TYPES as readonly string[]).includes(event.type))
      .map((event) => ({
        eventId: event.eventId,
        type: event.type,
        version: event.streamVersion,
        recordedAt: event.recordedAt,
        data: event.data,
      }));
  };
  return {
    of,
    // One indexed read per stream (stream_id, stream_version): a page is at most 1000 of them.
    async ofMany(itemIds) {
      return new Map(await Promise.all(itemIds.map(async (id) => [id, await of(id)] as const)));
    },
  };
}
