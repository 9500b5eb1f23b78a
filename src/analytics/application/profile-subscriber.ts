import type { Subscriber } from '../../shared/subscriptions/subscriber.js';
import { profileFactsOf, PROFILE_MESSAGE_TYPES, tiesIds, type ProfileFact } from '../domain/profile.js';
import type { JsonObject } from '../../shared/events.js';
import type { ProfileLedgerFor } from './profile-store.js';

const DATA_INGESTED = 'DataIngested';

type IngestedData = {
  item_id?: unknown;
  partner_id?: unknown;
  event_type?: unknown;
  payload?: unknown;
  metadata?: { channel?: unknown };
};

/**
 * An identify, alias or group message of the tracking API, or another of its messages that ties a user
 * to an anonymous id: every other item leaves profiles alone.
 */
const isProfileMessage = (data: IngestedData) =>
  data.metadata?.channel === 'analytics_api' &&
  ((PROFILE_MESSAGE_TYPES as readonly unknown[]).includes(data.event_type) ||
    (typeof data.payload === 'object' && data.payload !== null && tiesIds(data.payload)));

/**
 * Keeps the profiles view from identify, alias and group messages of the tracking API, and the ties
 * between ids its other messages carry. Every write
 * is an upsert that reaches the same row whatever the order or repetition, so redelivery and replay
 * end in the same view.
 */
export function profileSubscriber(ledgerFor: ProfileLedgerFor): Subscriber {
  return {
    name: 'profiles',
    handles: [DATA_INGESTED],
    wants: (event) => isProfileMessage(event.data as IngestedData),
    async handle(events, tx) {
      const ledger = ledgerFor(tx.db);
      // Written per application, many rows a statement: an identify of 4,000 traits was 4,000 statements.
      const factsByApp = new Map<string, ProfileFact[]>();
      for (const event of events) {
        const data = event.data as IngestedData;
        if (!isProfileMessage(data)) continue;
        if (
          typeof data.item_id !== 'string' ||
          typeof data.partner_id !== 'string' ||
          typeof data.payload !== 'object' ||
          data.payload === null
        )
          continue;
        let facts = factsByApp.get(data.partner_id);
        if (!facts) factsByApp.set(data.partner_id, (facts = []));
        for (const fact of profileFactsOf(data.item_id, data.payload as JsonObject)) facts.push(fact);
      }
      for (const [appId, facts] of factsByApp) await ledger.record(appId, facts);
    },
    async reset(tx) {
      await ledgerFor(tx.db).clear();
    },
  };
}
