import { itemIdOfStream } from '../../shared/contracts/data-events.js';
import type { Subscriber } from '../../shared/subscriptions/subscriber.js';
import { laterStatus, STATUS_AFTER, type ItemStatus } from '../domain/item-status.js';
import type { ItemStatusesFor } from './ports.js';

/**
 * Keeps the status of the ingestion view's items current (GET /ingest/{id}) from the pipeline's
 * published events: one update per item and batch, whatever stages the batch holds.
 */
export function itemStatusSubscriber(statuses: ItemStatusesFor): Subscriber {
  return {
    name: 'item-status',
    handles: Object.keys(STATUS_AFTER),
    // A status only moves forward (laterStatus), so an event folded again changes nothing.
    idempotent: true,
    async handle(events, tx) {
      const latest = new Map<string, ItemStatus>();
      for (const event of events) {
        const status = STATUS_AFTER[event.type];
        // From the stream, not the data: a status event carries the whole item, and parsing it only
        // for its id cost 2 % of the storage thread.
        const itemId = itemIdOfStream(event.streamId) ?? (event.data as { item_id?: unknown }).item_id;
        if (!status || typeof itemId !== 'string') continue;
        latest.set(itemId, laterStatus(latest.get(itemId) ?? 'ingested', status));
      }
      if (latest.size > 0) await statuses(tx.db).advance(latest);
    },
    async reset(tx) {
      await statuses(tx.db).reset();
    },
  };
}
