import type { Kysely } from 'kysely';
import type { RecordedEvent } from '../../../shared/events.js';
import type { ItemHistory } from '../../application/ports.js';
import { rowPieces } from '../../../shared/sql/statement-shapes.js';
import { insertTemplate } from '../../../shared/sql/insert-template.js';

type Tables = {
  query_item_events: { item_id: string; event_id: string; type: string; version: number; data: string; recorded_at: string };
};

const tables = (db: Kysely<object>) => db.withTables<Tables>();

const insertHistory = insertTemplate<Tables['query_item_events']>(
  ['item_id', 'event_id', 'type', 'version', 'data', 'recorded_at'],
  (db, rows) =>
    tables(db)
      .insertInto('query_item_events')
      .values(rows)
      .onConflict((oc) => oc.doNothing()),
);

/**
 * Item histories kept by the query service itself, for the distributed mode where the events of one
 * item come from several services' logs. Ordered by the time each was recorded, then by stream version.
 */
export function sqlItemHistory(db: Kysely<object>): ItemHistory & { record(events: readonly RecordedEvent[]): Promise<void> } {
  return {
    async record(events) {
      const rows = events.map((event) => ({
        item_id: (event.data as { item_id: string }).item_id,
        event_id: event.eventId,
        type: event.type,
        version: event.streamVersion,
        data: JSON.stringify(event.data),
        recorded_at: event.recordedAt,
      }));
      for (const piece of rowPieces(db, rows)) await insertHistory(db, piece);
    },
    async of(itemId) {
      const rows = await tables(db)
        .selectFrom('query_item_events')
        .selectAll()
        .where('item_id', '=', itemId)
        .orderBy('recorded_at')
        .orderBy('version')
        .execute();
      return rows.map((row) => ({
        eventId: row.event_id,
        type: row.type,
        version: row.version,
        recordedAt: row.recorded_at,
        data: JSON.parse(row.data) as object,
      }));
    },
  };
}
