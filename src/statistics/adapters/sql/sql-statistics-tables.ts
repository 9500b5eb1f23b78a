import { PostgresAdapter, sql, type Kysely } from 'kysely';
import type { StatisticsTables } from '../../application/ports.js';
import type { ItemTally } from '../../domain/item-tally.js';
import { keyPieces, rowPieces } from '../../../shared/sql/statement-shapes.js';
import { addCounters, NO_EVENTS, type BucketCounters, type Counters } from '../../domain/counters.js';
import { tables, toBucketRow, toItemRow, toTally, type ItemRow, type Tables } from './tables.js';
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
          .onConflict((oc) => oc.columns(['app_id', 'period', 'bucket_start', 'event_type']).doUpdateSet(addExcluded('statistics_buckets')))
          .execute();
      }
      const { types, buckets, apps } = rollups(changes);
      // Types new to their application: inserted at zero first, so the one writer that creates a row counts it.
      const newTypes = new Map<string, number>();
      for (const rows of rowPieces(db, types)) {
        const created = await t
          .insertInto('statistics_type_totals')
          .values(rows.map((row) => ({ ...row, ...columnsOf(NO_EVENTS) })))
          .onConflict((oc) => oc.columns(['app_id', 'event_type']).doNothing())
          .returning('app_id')
          .execute();
        for (const { app_id } of created) newTypes.set(app_id, (newTypes.get(app_id) ?? 0) + 1);
        await t
          .insertInto('statistics_type_totals')
          .values(rows)
          .onConflict((oc) => oc.columns(['app_id', 'event_type']).doUpdateSet(addExcluded('statistics_type_totals')))
          .execute();
      }
      for (const rows of rowPieces(db, buckets)) {
        await t
          .insertInto('statistics_bucket_totals')
          .values(rows)
          .onConflict((oc) => oc.columns(['app_id', 'period', 'bucket_start']).doUpdateSet(addExcluded('statistics_bucket_totals')))
          .execute();
      }
      const appRows = apps.map((row) => ({ ...row, event_types: newTypes.get(row.app_id) ?? 0 }));
      for (const rows of rowPieces(db, appRows)) {
        await t
          .insertInto('statistics_app_totals')
          .values(rows)
          .onConflict((oc) =>
            oc.column('app_id').doUpdateSet((eb) => ({
              ...addExcluded('statistics_app_totals'),
              event_types: eb('statistics_app_totals.event_types', '+', eb.ref('excluded.event_types')),
            })),
          )
          .execute();
      }
    },

    async replaceApplication(appId, tallies, buckets) {
      await t.deleteFrom('statistics_items').where('app_id', '=', appId).execute();
      for (const table of ROLLUPS) await t.deleteFrom(table).where('app_id', '=', appId).execute();
      await t.deleteFrom('statistics_buckets').where('app_id', '=', appId).execute();
      for (const rows of rowPieces(db, tallies.map(toItemRow))) await t.insertInto('statistics_items').values(rows).execute();
      for (const rows of rowPieces(db, buckets.map(toBucketRow))) await t.insertInto('statistics_buckets').values(rows).execute();
      const { types, buckets: bucketTotals, apps } = rollups(buckets);
      for (const rows of rowPieces(db, types)) await t.insertInto('statistics_type_totals').values(rows).execute();
      for (const rows of rowPieces(db, bucketTotals)) await t.insertInto('statistics_bucket_totals').values(rows).execute();
      const appRows = apps.map((row) => ({ ...row, event_types: types.length }));
      for (const rows of rowPieces(db, appRows)) await t.insertInto('statistics_app_totals').values(rows).execute();
    },

    async clear() {
      await t.deleteFrom('statistics_items').execute();
      await t.deleteFrom('statistics_buckets').execute();
      for (const table of ROLLUPS) await t.deleteFrom(table).execute();
    },
  };
}

const ROLLUPS = ['statistics_type_totals', 'statistics_bucket_totals', 'statistics_app_totals'] as const;

// Every counted item is in exactly one weekly bucket: the weekly rows sum to the all-time counters.
const ALL_TIME = 'weekly';

type CounterColumns = Pick<Tables['statistics_buckets'], 'total_events' | 'processed_events' | 'failed_events' | 'pending_events'>;

const columnsOf = (counters: Counters): CounterColumns => ({
  total_events: counters.totalEvents,
  processed_events: counters.processedEvents,
  failed_events: counters.failedEvents,
  pending_events: counters.pendingEvents,
});

/** `SET counter = counter + excluded.counter` for each counter of `table`'s row. */
const addExcluded = (table: keyof Tables) => {
  const plus = (column: keyof CounterColumns) => sql<number>`${sql.ref(`${table}.${column}`)} + ${sql.ref(`excluded.${column}`)}`;
  return {
    total_events: plus('total_events'),
    processed_events: plus('processed_events'),
    failed_events: plus('failed_events'),
    pending_events: plus('pending_events'),
  };
};

/**
 * What bucket changes add to the roll-ups: the weekly ones to their type's all-time counters, every one
 * to its bucket's counters across types, and the weekly ones to their application's. One row per key.
 */
function rollups(changes: readonly BucketCounters[]) {
  const types = new Map<string, { app_id: string; event_type: string; counters: Counters }>();
  const buckets = new Map<string, { app_id: string; period: string; bucket_start: string; counters: Counters }>();
  const apps = new Map<string, { app_id: string; counters: Counters }>();
  const add = <V extends { counters: Counters }>(map: Map<string, V>, key: string, row: V) => {
    const found = map.get(key);
    if (found) found.counters = addCounters(found.counters, row.counters);
    else map.set(key, row);
  };
  for (const { appId, period, bucketStart, eventType, counters } of changes) {
    add(buckets, `${appId}\u0000${period}\u0000${bucketStart}`, { app_id: appId, period, bucket_start: bucketStart, counters });
    if (period !== ALL_TIME) continue;
    add(types, `${appId}\u0000${eventType}`, { app_id: appId, event_type: eventType, counters });
    add(apps, appId, { app_id: appId, counters });
  }
  const rows = <V extends { counters: Counters }>(map: Map<string, V>) =>
    [...map.values()].map(({ counters, ...key }) => ({ ...key, ...columnsOf(counters) }));
  return { types: rows(types), buckets: rows(buckets), apps: rows(apps) };
}
