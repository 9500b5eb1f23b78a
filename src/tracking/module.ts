import type { AppendRequest } from '../shared/event-store/event-store.js';
import type { ContextModule, ContextTables, ModuleDeps } from '../shared/context-module.js';
import { checkTrackingHealth, getTrackingEvent } from './application/queries.js';
import { appendAllOnce, type KeyedEntry } from '../shared/event-store/keyed-append.js';
import { keyReused, recordTrackingEvent } from './application/record-tracking-event.js';
import { recordTrackingEvents } from './application/record-tracking-events.js';
import { trackingHttp } from './adapters/http/tracking-routes.js';
import { trackingMigrations } from './adapters/sql/migrations.js';
import { sqlTrackingEventsView, trackingEventsProjection } from './adapters/sql/tracking-events-table.js';

export const trackingTables: ContextTables = { migrations: [trackingMigrations], inlineProjections: [trackingEventsProjection] };

export function trackingModule({ store, db, clock, newId, procedures, admit }: ModuleDeps): ContextModule {
  const events = sqlTrackingEventsView(db);
  const appendAll = procedures.define('tracking.append-all', async (requests: readonly AppendRequest[]) => {
    await admit?.(requests[0]?.source, requests.length);
    await store.transaction((tx) => tx.appendMany(requests));
  });
  const appendKeyed = procedures.define('tracking.append-all-once', async (entries: readonly KeyedEntry[]) => {
    await admit?.(entries[0]?.append.request.source, entries.length);
    return await appendAllOnce(store, entries, (entry) => keyReused(entry.key, entry.place));
  });
  return {
    name: 'tracking',
    http: [
      trackingHttp({
        record: recordTrackingEvent({ store, clock, newId }),
        recordBatch: recordTrackingEvents({ clock, newId, appendAll, appendAllOnce: appendKeyed }),
        get: getTrackingEvent(events),
        health: checkTrackingHealth(events),
      }),
    ],
  };
}
