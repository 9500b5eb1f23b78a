import type { Kysely } from 'kysely';
import { decodeCursor, pageOf } from '../../../shared/pagination.js';
import type { ItemViews } from '../../application/ports.js';
import type { DeliveryView, ItemView, PipelineStatus } from '../../domain/item-view.js';

type Row = {
  id: string;
  partner_id: string;
  event_type: string;
  status: string;
  payload: string | null;
  received_at: string;
  validation: string | null;
  processing: string | null;
  metadata: string | null;
  deliveries: string;
  updated_at: string;
};
type Tables = { query_items: Row };

const tables = (db: Kysely<object>) => db.withTables<Tables>();
const json = (value: unknown) => (value === null ? null : JSON.stringify(value));
const parse = <T>(text: string | null): T | null => (text === null ? null : (JSON.parse(text) as T));

const toRow = (view: ItemView): Row => ({
  id: view.id,
  partner_id: view.partnerId,
  event_type: view.eventType,
  status: view.status,
  payload: json(view.payload),
  received_at: view.receivedAt,
  validation: json(view.validation),
  processing: json(view.processing),
  metadata: json(view.metadata),
  deliveries: JSON.stringify(view.deliveries),
  updated_at: view.updatedAt,
});

const toView = (row: Row): ItemView => ({
  id: row.id,
  partnerId: row.partner_id,
  eventType: row.event_type,
  status: row.status as PipelineStatus,
  payload: parse(row.payload),
  receivedAt: row.received_at,
  validation: parse(row.validation),
  processing: parse(row.processing),
  metadata: parse(row.metadata),
  deliveries: JSON.parse(row.deliveries) as DeliveryView[],
  updatedAt: row.updated_at,
});

// 11 columns a row keeps 500 rows far below SQLite's bound-parameter limit.
const CHUNK = 500;

export function sqlItemViews(db: Kysely<object>): ItemViews {
  return {
    async get(id) {
      const row = await tables(db).selectFrom('query_items').selectAll().where('id', '=', id).executeTakeFirst();
      return row && toView(row);
    },

    async getMany(ids) {
      const found = new Map<string, ItemView>();
      for (let i = 0; i < ids.length; i += CHUNK) {
        const rows = await tables(db)
          .selectFrom('query_items')
          .selectAll()
          .where('id', 'in', ids.slice(i, i + CHUNK))
          .execute();
        for (const row of rows) found.set(row.id, toView(row));
      }
      return found;
    },

    async list(filter, page) {
      let query = tables(db)
        .selectFrom('query_items')
        .selectAll()
        .orderBy('id')
        .limit(page.limit + 1);
      if (filter.partnerId !== undefined) query = query.where('partner_id', '=', filter.partnerId);
      if (filter.status !== undefined) query = query.where('status', '=', filter.status);
      if (filter.eventType !== undefined) query = query.where('event_type', '=', filter.eventType);
      if (filter.from !== undefined) query = query.where('received_at', '>=', filter.from);
      if (filter.to !== undefined) query = query.where('received_at', '<', filter.to);
      if (page.cursor !== undefined) query = query.where('id', '>', decodeCursor(page.cursor));
      return pageOf((await query.execute()).map(toView), page.limit, (view) => view.id);
    },

    async save(views) {
      const rows = views.map(toRow);
      for (let i = 0; i < rows.length; i += CHUNK) {
        await tables(db)
          .insertInto('query_items')
          .values(rows.slice(i, i + CHUNK))
          .onConflict((oc) =>
            oc.column('id').doUpdateSet((eb) => ({
              partner_id: eb.ref('excluded.partner_id'),
              event_type: eb.ref('excluded.event_type'),
              status: eb.ref('excluded.status'),
              payload: eb.ref('excluded.payload'),
              received_at: eb.ref('excluded.received_at'),
              validation: eb.ref('excluded.validation'),
              processing: eb.ref('excluded.processing'),
              metadata: eb.ref('excluded.metadata'),
              deliveries: eb.ref('excluded.deliveries'),
              updated_at: eb.ref('excluded.updated_at'),
            })),
          )
          .execute();
      }
    },

    async clear() {
      await tables(db).deleteFrom('query_items').execute();
    },
  };
}
