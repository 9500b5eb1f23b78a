import type { EventStore } from '../../shared/event-store/event-store.js';
import type { RecordedEvent } from '../../shared/events.js';
import { dataStreamId } from '../../shared/contracts/data-events.js';
import type { ItemHistory } from '../application/ports.js';
import { QUERY_EVENT_TYPES } from '../domain/item-view.js';

/** In embedded mode the history is the item's stream in the shared log: nothing is copied. */
export function eventStoreItemHistory(store: EventStore): ItemHistory {
  const historyOf = (events: readonly RecordedEvent[]) =>
    events
      .filter((event) => (QUERY_EVENT_TYPES as readonly string[]).includes(event.type))
      .map((event) => ({
        eventId: event.eventId,
        type: event.type,
        version: event.streamVersion,
        recordedAt: event.recordedAt,
        data: event.data,
      }));
  return {
    of: async (itemId) => historyOf(await store.readStream(dataStreamId(itemId))),
    // A page's histories in one read per 500 items: a read per item held the connection (and on
    // SQLite the HTTP thread) for a second at 1,000 items.
    async ofMany(itemIds) {
      const streams = await store.readStreams(itemIds.map(dataStreamId));
      return new Map(itemIds.map((id) => [id, historyOf(streams.get(dataStreamId(id)) ?? [])]));
    },
  };
}
