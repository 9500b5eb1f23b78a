import { PostgresAdapter, sql, type Kysely } from 'kysely';
import type { StatisticsTables } from '../../application/ports.js';
import type { ItemTally } from '../../domain/item-tally.js';
import { keyPieces, rowPieces } from '../../../shared/sql/statement-shapes.js';
import { rollUp } from '../../domain/roll-ups.js';
import type { BucketCounters } from '../../domain/counters.js';
import { tables, toBucketRow, toBucketTotalsRow, toItemRow, toTally, toTypeTotalsRow, type ItemRow, type Tables } from './tables.js';
import { insertTemplate } from '../../../shared/sql/insert-template.js';
import { KEY_LOCK_SPACES, lockKeys } from '../../../shared/sql/key-locks.js';

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

// The buckets and the sums kept beside them (roll-ups.ts): written together, always.
const BUCKET_TABLES = ['statistics_buckets', 'statistics_type_totals', 'statistics_bucket_totals'] as const;

type CounterTable = (typeof BUCKET_TABLES)[number];

const COUNTER_COLUMNS = ['total_events', 'processed_events', 'failed_events', 'pending_events'] as const;

/**
 * Adds each row's counters to those of the row with its key, creating it when there is none: one
 * statement per piece (each key appears once in it, which PostgreSQL's ON CONFLICT requires), its text
 * kept per row count.
 */
function counterUpsert<Table extends CounterTable>(table: Table, keys: ReadonlyArray<keyof Tables[Table] & string>) {
  type Row = Tables[Table];
  // One shape for three tables: Kysely cannot follow a table chosen by a type parameter.
  const upsert = insertTemplate<Row>([...keys, ...COUNTER_COLUMNS], (db, rows) =>
    (db as unknown as Kysely<Record<CounterTable, Record<string, unknown>>>)
      .insertInto(table)
      .values(rows as never)
      .onConflict((oc) =>
        oc
          .columns(keys as never)
          .doUpdateSet(
            (eb) =>
              Object.fromEntries(
                COUNTER_COLUMNS.map((column) => [column, eb(sql.ref(`${table}.${column}`), '+', sql.ref(`excluded.${column}`))]),
              ) as never,
          ),
      ),
  );
  return async (db: Kysely<object>, rows: readonly Row[]) => {
    for (const piece of rowPieces(db, rows)) await upsert(db, piece);
  };
}

const addToBuckets = counterUpsert('statistics_buckets', ['app_id', 'period', 'bucket_start', 'event_type']);
const addToTypeTotals = counterUpsert('statistics_type_totals', ['app_id', 'event_type']);
const addToBucketTotals = counterUpsert('statistics_bucket_totals', ['app_id', 'period', 'bucket_start']);

/** The statistics' tables for their writers; `db` is the transaction of the caller. */
export function sqlStatisticsTables(db: Kysely<object>): StatisticsTables {
  const t = tables(db);

  /** An application's buckets, and the sums kept beside them, replaced by these buckets and their sums. */
  const replaceBucketsOf = async (appId: string, buckets: readonly BucketCounters[]) => {
    for (const table of BUCKET_TABLES) await t.deleteFrom(table).where('app_id', '=', appId).execute();
    const sums = rollUp(buckets);
    for (const rows of rowPieces(db, buckets.map(toBucketRow))) await t.insertInto('statistics_buckets').values(rows).execute();
    for (const rows of rowPieces(db, sums.types.map(toTypeTotalsRow))) await t.insertInto('statistics_type_totals').values(rows).execute();
    for (const rows of rowPieces(db, sums.buckets.map(toBucketTotalsRow)))
      await t.insertInto('statistics_bucket_totals').values(rows).execute();
  };

  return {
    lockTallies: (itemIds) => lockKeys(db, KEY_LOCK_SPACES.itemTallies, itemIds),

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
        await sql`LOCK TABLE statistics_items, statistics_buckets, statistics_type_totals, statistics_bucket_totals IN EXCLUSIVE MODE`.execute(
          db,
        );
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
      await replaceBucketsOf(appId, buckets);
    },

    async saveTallies(tallies) {
      for (const rows of rowPieces(db, tallies.map(toItemRow))) await upsertTallies(db, rows);
    },

    async addToBuckets(changes) {
      const sums = rollUp(changes);
      await addToBuckets(db, changes.map(toBucketRow));
      await addToTypeTotals(db, sums.types.map(toTypeTotalsRow));
      await addToBucketTotals(db, sums.buckets.map(toBucketTotalsRow));
    },

    async replaceApplication(appId, tallies, buckets) {
      await t.deleteFrom('statistics_items').where('app_id', '=', appId).execute();
      for (const rows of rowPieces(db, tallies.map(toItemRow))) await t.insertInto('statistics_items').values(rows).execute();
      await replaceBucketsOf(appId, buckets);
    },

    async clear() {
      await t.deleteFrom('statistics_items').execute();
      for (const table of BUCKET_TABLES) await t.deleteFrom(table).execute();
      await t
        .updateTable('statistics_resets')
        .set((eb) => ({ resets: eb('resets', '+', 1) }))
        .where('id', '=', 1)
        .execute();
    },

    async resets() {
      const row = await t.selectFrom('statistics_resets').select('resets').where('id', '=', 1).executeTakeFirst();
      return Number(row?.resets ?? 0);
    },
  };
}
