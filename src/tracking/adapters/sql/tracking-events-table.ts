import type { Kysely } from 'kysely';
import type { InlineProjection } from '../../../shared/event-store/event-store.js';
import type { TrackingEventsView } from '../../application/ports.js';
import { trackingEventFromRecorded, type TrackingEventRecorded } from '../../domain/tracking-event.js';
import { rowPieces } from '../../../shared/sql/statement-shapes.js';

type TrackingEventsTable = {
  id: string;
  partner_id: string;
  campaign_id: string;
  visitor_id: string;
  interaction_type: TrackingEventRecorded['data']['interaction_type'];
  source_url: string;
  destination_url: string;
  occurred_at: string;
  recorded_at: string;
};

// Type aliases, not interfaces: Kysely's withTables needs index-compatible shapes.
type Tables = { tracking_events: TrackingEventsTable };

const tables = (db: Kysely<object>) => db.withTables<Tables>();

/** Writes each TrackingEventRecorded in the append's own transaction, so a GET right after the POST finds it. */
export const trackingEventsProjection: InlineProjection = {
  name: 'tracking.events',
  handles: ['TrackingEventRecorded'],
  async apply(db, events) {
    const rows = events.map(({ data }): TrackingEventsTable => {
      const event = data as TrackingEventRecorded['data'];
      return {
        id: event.tracking_event_id,
        partner_id: event.partner_id,
        campaign_id: event.campaign_id,
        visitor_id: event.visitor_id,
        interaction_type: event.interaction_type,
        source_url: event.source_url,
        destination_url: event.destination_url,
        occurred_at: event.occurred_at,
        recorded_at: event.recorded_at,
      };
    });
    for (const piece of rowPieces(db, rows)) {
      await tables(db)
        .insertInto('tracking_events')
        .values(piece)
        .onConflict((oc) => oc.column('id').doNothing())
        .execute();
    }
  },
};

export function sqlTrackingEventsView(db: Kysely<object>): TrackingEventsView {
  return {
    async byId(id) {
      const row = await tables(db).selectFrom('tracking_events').selectAll().where('id', '=', id).executeTakeFirst();
      return row && trackingEventFromRecorded({ ...row, tracking_event_id: row.id });
    },

    async probe() {
      await tables(db).selectFrom('tracking_events').select('id').limit(1).execute();
    },
  };
}
