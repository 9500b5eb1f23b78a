import { sql, type Kysely, type Migration } from 'kysely';
import type { MigrationSet } from '../../../shared/sqlite/migrate.js';
import { byteOrderColumns } from '../../../shared/postgres/byte-order-columns.js';

// Plain types and text timestamps only, so the same migration runs on SQLite and PostgreSQL.
const createStatistics: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('statistics_buckets')
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('period', 'text', (c) => c.notNull())
      .addColumn('bucket_start', 'text', (c) => c.notNull())
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('total_events', 'integer', (c) => c.notNull())
      .addColumn('processed_events', 'integer', (c) => c.notNull())
      .addColumn('failed_events', 'integer', (c) => c.notNull())
      .addColumn('pending_events', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('statistics_buckets_pk', ['app_id', 'period', 'bucket_start', 'event_type'])
      .execute();
    // The primary key serves reads across event types; this index serves a read filtered by one.
    await db.schema
      .createIndex('statistics_buckets_by_type')
      .on('statistics_buckets')
      .columns(['app_id', 'period', 'event_type', 'bucket_start'])
      .execute();

    await db.schema
      .createTable('statistics_items')
      .addColumn('item_id', 'text', (c) => c.primaryKey())
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('received_at', 'text')
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('position', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('statistics_items_by_app').on('statistics_items').columns(['app_id', 'position']).execute();
  },
};

// Buckets are paged by (bucket start, event type) and applications by id: by bytes on every database.
const namesInByteOrder = byteOrderColumns({ statistics_buckets: ['app_id', 'event_type'] });

/**
 * Roll-ups the dashboard reads instead of summing every event type's rows on each request: all-time
 * counters per event type (indexed busiest first), per bucket across types, and per application
 * with its number of types. Summing 62,500 types held SQLite's reading thread (the HTTP thread) for
 * about 100 ms a dashboard. Counters are bigint: an application's all-time sums outgrow an integer.
 */
const createRollups: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('statistics_type_totals')
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('total_events', 'bigint', (c) => c.notNull())
      .addColumn('processed_events', 'bigint', (c) => c.notNull())
      .addColumn('failed_events', 'bigint', (c) => c.notNull())
      .addColumn('pending_events', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('statistics_type_totals_pk', ['app_id', 'event_type'])
      .execute();
    await db.schema
      .createTable('statistics_bucket_totals')
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('period', 'text', (c) => c.notNull())
      .addColumn('bucket_start', 'text', (c) => c.notNull())
      .addColumn('total_events', 'bigint', (c) => c.notNull())
      .addColumn('processed_events', 'bigint', (c) => c.notNull())
      .addColumn('failed_events', 'bigint', (c) => c.notNull())
      .addColumn('pending_events', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('statistics_bucket_totals_pk', ['app_id', 'period', 'bucket_start'])
      .execute();
    await db.schema
      .createTable('statistics_app_totals')
      .addColumn('app_id', 'text', (c) => c.primaryKey())
      .addColumn('event_types', 'bigint', (c) => c.notNull())
      .addColumn('total_events', 'bigint', (c) => c.notNull())
      .addColumn('processed_events', 'bigint', (c) => c.notNull())
      .addColumn('failed_events', 'bigint', (c) => c.notNull())
      .addColumn('pending_events', 'bigint', (c) => c.notNull())
      .execute();
    // Ties among the busiest go to the first type by bytes, on PostgreSQL too; then the index is built in that order.
    await byteOrderColumns({ statistics_type_totals: ['app_id', 'event_type'], statistics_app_totals: ['app_id'] }).up(db);
    await db.schema
      .createIndex('statistics_type_totals_busiest')
      .on('statistics_type_totals')
      .columns(['app_id', 'total_events desc', 'event_type'])
      .execute();

    const sums = sql`SUM(total_events), SUM(processed_events), SUM(failed_events), SUM(pending_events)`;
    await sql`INSERT INTO statistics_type_totals SELECT app_id, event_type, ${sums} FROM statistics_buckets WHERE period = 'weekly' GROUP BY app_id, event_type`.execute(
      db,
    );
    await sql`INSERT INTO statistics_bucket_totals SELECT app_id, period, bucket_start, ${sums} FROM statistics_buckets GROUP BY app_id, period, bucket_start`.execute(
      db,
    );
    await sql`INSERT INTO statistics_app_totals SELECT app_id, COUNT(*), ${sums} FROM statistics_type_totals GROUP BY app_id`.execute(db);
  },
};

export const statisticsMigrations: MigrationSet = {
  owner: 'statistics',
  migrations: { '0001_create_statistics': createStatistics, '0002_names_in_byte_order': namesInByteOrder, '0003_rollups': createRollups },
};
