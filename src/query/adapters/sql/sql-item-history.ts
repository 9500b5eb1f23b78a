import type { Kysely } from 'kysely';
import type { RecordedEvent } from '../../../shared/events.js';
import type { ItemHistory } from '../../application/ports.js';
import { keyPieces, rowPieces } from '../../../shared/sql/statement-shapes.js';
import type { HistoryEntry } from '../../domain/item-view.js';
import { insertTemplate } from '../../../shared/sql/insert-template.js';
import { mapYielding } from '../../../shared/yielding.js';

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

const entryOf = (row: Tables['query_item_events']): HistoryEntry => ({
  eventId: row.event_id,
  type: row.type,
  version: row.version,
  recordedAt: row.recorded_at,
  data: JSON.parse(row.data) as object,
});

/**
 * Item histories kept by the query service itself, for the distributed mode where the events of one
 * item come from several services' logs. Ordered by the time each was recorded, then by stream version.
 */
export function sqlItemHistory(db: Kysely<object>): ItemHistory & { record(events: readonly RecordedEvent[]): Promise<void> } {
  const ofMany = async (itemIds: readonly string[]) => {
    const histories = new Map<string, HistoryEntry[]>(itemIds.map((id) => [id, []]));
    for (const piece of keyPieces(db, [...new Set(itemIds)])) {
      const rows = await tables(db)
        .selectFrom('query_item_events')
        .selectAll()
        .where('item_id', 'in', piece)
        .orderBy('item_id')
        .orderBy('recorded_at')
        .orderBy('version')
        .execute();
      // Parsed a slice of the thread at a time: a page's histories repeat each payload four times.
      const entries = await mapYielding(rows, (row) => [row.item_id, entryOf(row)] as const);
      for (const [itemId, entry] of entries) histories.get(itemId)?.push(entry);
    }
    return histories;
  };
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
    of: async (itemId) => (await ofMany([itemId])).get(itemId) ?? [],
    ofMany,
  };
}
