import { PostgresAdapter, sql, type Kysely } from 'kysely';
import type { StatisticsTables } from '../../application/ports.js';
import type { ItemTally } from '../../domain/item-tally.js';
import { keyPieces, rowPieces } from '../../../shared/sql/statement-shapes.js';
import { tables, toBucketRow, toItemRow, toTally, type ItemRow } from './tables.js';
import { insertTemplate } from '../../../shared/sql/insert-template.js';

const upsertTallies = insertTemplate<ItemRow>(['item_id', 'app_id', 'event_type', 'received_at', 'state', 'position'], (db, rows) =>
  tables(db)
    .insertInto('statistics_items')
    .values(rows)
    .onConflict((oc) =>
      oc.column('item_id').doUpdateSet((eb) => ({
        received_at: eb.ref('excluded.received_at'),
        state: eb.ref('excluded.state'),
        position: eb.ref('excluded.position'),
      })),
    ),
);

/** The statistics' tables for their writers; `db` is the transaction of the caller. */
export function sqlStatisticsTables(db: Kysely<object>): StatisticsTables {
  const t = tables(db);
  return {
    async tallies(itemIds) {
      const found = new Map<string, ItemTally>();
      for (const ids of keyPieces(db, itemIds)) {
        for (const row of await t.selectFrom('statistics_items').selectAll().where('item_id', 'in', ids).execute()) {
          found.set(row.item_id, toTally(row));
        }
      }
      return found;
    },

    async applicationTallies(appId) {
      return (await t.selectFrom('statistics_items').selectAll().where('app_id', '=', appId).execute()).map(toTally);
    },

    async excludeWriters() {
      // SQLite has one writer at a time already; PostgreSQL's transactions overlap. Readers go on.
      if (db.getExecutor().adapter instanceof PostgresAdapter) {
        await sql`LOCK TABLE statistics_items, statistics_buckets IN EXCLUSIVE MODE`.execute(db);
      }
    },

    async talliesChangedAfter(appId, position) {
      const rows = await t
        .selectFrom('statistics_items')
        .selectAll()
        .where('app_id', '=', appId)
        .where('position', '>', position)
        .execute();
      return rows.map(toTally);
    },

    async talliesPageAfter(appId, after, limit) {
      const rows = await t
        .selectFrom('statistics_items')
        .selectAll()
        .where('app_id', '=', appId)
        .where((eb) =>
          eb.or([eb('position', '>', after.position), eb.and([eb('position', '=', after.position), eb('item_id', '>', after.itemId)])]),
        )
        .orderBy('position')
        .orderBy('item_id')
        .limit(limit)
        .execute();
      return rows.map(toTally);
    },

    async deleteTallies(itemIds) {
      for (const ids of keyPieces(db, itemIds)) await t.deleteFrom('statistics_items').where('item_id', 'in', ids).execute();
    },

    async replaceBuckets(appId, buckets) {
      await t.deleteFrom('statistics_buckets').where('app_id', '=', appId).execute();
      for (const rows of rowPieces(db, buckets.map(toBucketRow))) await t.insertInto('statistics_buckets').values(rows).execute();
    },

    async saveTallies(tallies) {
      for (const rows of rowPieces(db, tallies.map(toItemRow))) await upsertTallies(db, rows);
    },

    async addToBuckets(changes) {
      // One statement per chunk; each bucket appears once in it, which PostgreSQL's ON CONFLICT requires.
      for (const rows of rowPieces(db, changes.map(toBucketRow))) {
        await t
          .insertInto('statistics_buckets')
          .values(rows)
          .onConflict((oc) =>
            oc.columns(['app_id', 'period', 'bucket_start', 'event_type']).doUpdateSet((eb) => ({
              total_events: eb('statistics_buckets.total_events', '+', eb.ref('excluded.total_events')),
              processed_events: eb('statistics_buckets.processed_events', '+', eb.ref('excluded.processed_events')),
              failed_events: eb('statistics_buckets.failed_events', '+', eb.ref('excluded.failed_events')),
              pending_events: eb('statistics_buckets.pending_events', '+', eb.ref('excluded.pending_events')),
            })),
          )
          .execute();
      }
    },

    async replaceApplication(appId, tallies, buckets) {
      await t.deleteFrom('statistics_items').where('app_id', '=', appId).execute();
      await t.deleteFrom('statistics_buckets').where('app_id', '=', appId).execute();
      for (const rows of rowPieces(db, tallies.map(toItemRow))) await t.insertInto('statistics_items').values(rows).execute();
      for (const rows of rowPieces(db, buckets.map(toBucketRow))) await t.insertInto('statistics_buckets').values(rows).execute();
    },

    async clear() {
      await t.deleteFrom('statistics_items').execute();
      await t.deleteFrom('statistics_buckets').execute();
    },
  };
}
