import { sql, type Kysely } from 'kysely';
import type { IngestedItemsView, ItemStatuses, ItemWithStatus } from '../../application/ports.js';
import { statusesBefore, type ItemStatus } from '../../domain/item-status.js';
import type { DataIngested, IngestedItem, ItemMetadata } from '../../domain/ingested-data.js';
import { itemFromIngested } from '../../domain/ingested-data.js';
import type { InlineProjection } from '../../../shared/event-store/event-store.js';
import { MAX_ITEM_PAGE_BYTES, rowsWithin } from '../../../shared/pagination.js';
import { cursorAfter, listPositions, positionOfCursor } from '../../../shared/sql/list-positions.js';
import { keyPieces, rowPieces } from '../../../shared/sql/statement-shapes.js';
import { insertTemplate } from '../../../shared/sql/insert-template.js';
import { mapYielding } from '../../../shared/yielding.js';

type IngestItemsTable = {
  id: string;
  partner_id: string;
  event_type: string;
  payload: string;
  metadata: string;
  received_at: string;
  /** Written as `ingested` by the table's default, moved on by the status subscriber. */
  status: ItemStatus;
  /** The list order: numbered as the row is written, so an item never appears behind a page already read. */
  seq: number | string;
};

// Type aliases, not interfaces: Kysely's withTables needs index-compatible shapes.
type Tables = {
  ingest_items: IngestItemsTable;
};

const tables = (db: Kysely<object>) => db.withTables<Tables>();

const insertItems = insertTemplate<IngestItemsTable>(
  ['id', 'partner_id', 'event_type', 'payload', 'metadata', 'received_at', 'status', 'seq'],
  (db, rows) =>
    tables(db)
      .insertInto('ingest_items')
      .values(rows)
      .onConflict((oc) => oc.column('id').doNothing()),
);

/** Writes each DataIngested into ingest_items in the append's own transaction, so a GET right after the POST finds it. */
export const ingestedItemsProjection: InlineProjection = {
  name: 'ingestion.items',
  handles: ['DataIngested'],
  async apply(db, events) {
    const positions = await listPositions(db, 'ingest_items', events.length);
    const rows = events.map(({ data }, i) => {
      const item = data as DataIngested['data'];
      return {
        id: item.item_id,
        partner_id: item.partner_id,
        event_type: item.event_type,
        payload: JSON.stringify(item.payload),
        metadata: JSON.stringify(item.metadata),
        received_at: item.received_at,
        status: 'ingested' as const,
        seq: positions[i] ?? 0,
      };
    });
    for (const piece of rowPieces(db, rows)) await insertItems(db, piece);
  },
};

export function sqlIngestedItemsView(db: Kysely<object>): IngestedItemsView {
  return {
    async byId(id) {
      const row = await tables(db).selectFrom('ingest_items').selectAll().where('id', '=', id).executeTakeFirst();
      return row && toItem(row);
    },

    async list(filter, page) {
      // Sizes first (from the record headers on SQLite), then the rows of a page of at most MAX_ITEM_PAGE_BYTES.
      let query = tables(db)
        .selectFrom('ingest_items')
        .select(['id', 'seq', sql<number>`octet_length(payload) + octet_length(metadata)`.as('bytes')])
        .orderBy('seq')
        .limit(page.limit + 1);
      if (filter.partnerId !== undefined) query = query.where('partner_id', '=', filter.partnerId);
      if (page.cursor !== undefined) query = query.where('seq', '>', await positionOfCursor(db, 'ingest_items', page.cursor));
      const sized = await query.execute();
      const taken = rowsWithin(sized, page.limit, MAX_ITEM_PAGE_BYTES);
      const byId = new Map<string, ItemWithStatus>();
      for (const piece of keyPieces(
        db,
        taken.map((row) => row.id),
      )) {
        const rows = await tables(db).selectFrom('ingest_items').selectAll().where('id', 'in', piece).execute();
        // Parsed a slice of the thread at a time: a page of items of thousands of keys each took 100 ms.
        for (const item of await mapYielding(rows, toItem)) byId.set(item.id, item);
      }
      const items = taken.flatMap((row) => byId.get(row.id) ?? []);
      const last = taken.at(-1)?.seq;
      return { items, nextCursor: sized.length > taken.length && last !== undefined ? cursorAfter(last) : null };
    },
  };
}

export function sqlItemStatuses(db: Kysely<object>): ItemStatuses {
  return {
    async advance(statuses) {
      const byStatus = new Map<ItemStatus, string[]>();
      for (const [id, status] of statuses) byStatus.set(status, [...(byStatus.get(status) ?? []), id]);
      for (const [status, ids] of byStatus) {
        for (const piece of keyPieces(db, ids)) {
          await tables(db)
            .updateTable('ingest_items')
            .set({ status })
            .where('id', 'in', piece)
            .where('status', 'in', statusesBefore(status))
            .execute();
        }
      }
    },
    async reset() {
      await tables(db).updateTable('ingest_items').set({ status: 'ingested' }).execute();
    },
  };
}

function toItem(row: IngestItemsTable): ItemWithStatus {
  return withStatus(
    row.status,
    itemFromIngested({
      item_id: row.id,
      partner_id: row.partner_id,
      event_type: row.event_type,
      payload: JSON.parse(row.payload) as DataIngested['data']['payload'],
      received_at: row.received_at,
      metadata: JSON.parse(row.metadata) as ItemMetadata,
    }),
  );
}

const withStatus = (status: ItemStatus, item: IngestedItem): ItemWithStatus => ({ ...item, status });
