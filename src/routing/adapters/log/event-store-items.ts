import type { DataIngested } from '../../../shared/contracts/data-events.js';
import type { EventStore } from '../../../shared/event-store/event-store.js';
import type { IngestedItems } from '../../application/ports.js';

// Recording lags receipt by a commit at most; a minute of margin keeps the window's edges inside the scan.
const SKEW_MS = 60_000;
const PAGE = 500;

/**
 * The items of a window read from the event store itself: a binary search over positions finds where
 * the window starts, so a replay does not read the log from its beginning. Works where routing
 * shares the log with ingestion (the embedded process).
 */
export function eventStoreItems(store: EventStore): IngestedItems {
  const recordedAt = async (position: number) => (await store.readAll({ after: position - 1, limit: 1 }))[0];

  const firstPositionFrom = async (from: string) => {
    const target = new Date(Date.parse(from) - SKEW_MS).toISOString();
    let low = 1;
    let high = await store.headPosition();
    while (low < high) {
      const middle = Math.floor((low + high) / 2);
      const event = await recordedAt(middle);
      if (event === undefined || event.recordedAt >= target) high = middle;
      else low = Math.max(middle + 1, event.position + 1);
    }
    return low;
  };

  return {
    async read(appId, { from, to }, afterPosition, { limit, budget, accept }) {
      const after = afterPosition > 0 ? afterPosition : (await firstPositionFrom(from)) - 1;
      const stopAt = new Date(Date.parse(to) + SKEW_MS).toISOString();
      const items: Array<{ position: number; item: DataIngested['data'] }> = [];
      let lastPosition = after;
      // Scans pages until it has `limit` items, leaves the window or spends its budget: a sparse window costs reads, not deliveries.
      for (let read = 0; read < budget;) {
        const page = await store.readAll({ after: lastPosition, limit: Math.min(PAGE, budget - read) });
        if (page.length === 0) return { items, lastPosition, done: true };
        read += page.length;
        for (const event of page) {
          if (event.recordedAt > stopAt) return { items, lastPosition, done: true };
          lastPosition = event.position;
          if (event.type !== 'DataIngested') continue;
          const item = (event as unknown as DataIngested).data;
          if (item.partner_id === appId && item.received_at >= from && item.received_at <= to && accept(item)) {
            items.push({ position: event.position, item });
            if (items.length >= limit) return { items, lastPosition, done: false };
          }
        }
      }
      return { items, lastPosition, done: false };
    },
  };
}
