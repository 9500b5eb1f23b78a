import { sql, type CreateTableBuilder, type Kysely, type Migration } from 'kysely';
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
 * Sums the dashboard and the list of applications read, kept beside the buckets (see roll-ups.ts), and
 * filled from the buckets there are. Counted over all time, so in 64 bits.
 */
const createRollUps: Migration = {
  async up(db: Kysely<unknown>) {
    const counters = (table: CreateTableBuilder<string, string>): CreateTableBuilder<string, string> =>
      table
        .addColumn('total_events', 'bigint', (c) => c.notNull())
        .addColumn('processed_events', 'bigint', (c) => c.notNull())
        .addColumn('failed_events', 'bigint', (c) => c.notNull())
        .addColumn('pending_events', 'bigint', (c) => c.notNull());
    await counters(
      db.schema
        .createTable('statistics_type_totals')
        .addColumn('app_id', 'text', (c) => c.notNull())
        .addColumn('event_type', 'text', (c) => c.notNull()),
    )
      .addPrimaryKeyConstraint('statistics_type_totals_pk', ['app_id', 'event_type'])
      .execute();
    // The busiest types of an application, read in this order without sorting all of them.
    await db.schema
      .createIndex('statistics_type_totals_busiest')
      .on('statistics_type_totals')
      .columns(['app_id', 'total_events desc', 'event_type'])
      .execute();
    await counters(
      db.schema
        .createTable('statistics_bucket_totals')
        .addColumn('app_id', 'text', (c) => c.notNull())
        .addColumn('period', 'text', (c) => c.notNull())
        .addColumn('bucket_start', 'text', (c) => c.notNull()),
    )
      .addPrimaryKeyConstraint('statistics_bucket_totals_pk', ['app_id', 'period', 'bucket_start'])
      .execute();
    await byteOrderColumns({ statistics_type_totals: ['app_id', 'event_type'], statistics_bucket_totals: ['app_id'] }).up(db);
    const sums = sql`SUM(total_events), SUM(processed_events), SUM(failed_events), SUM(pending_events)`;
    await sql`INSERT INTO statistics_type_totals (app_id, event_type, total_events, processed_events, failed_events, pending_events)
              SELECT app_id, event_type, ${sums} FROM statistics_buckets WHERE period = 'weekly' GROUP BY app_id, event_type`.execute(db);
    await sql`INSERT INTO statistics_bucket_totals (app_id, period, bucket_start, total_events, processed_events, failed_events, pending_events)
              SELECT app_id, period, bucket_start, ${sums} FROM statistics_buckets GROUP BY app_id, period, bucket_start`.execute(db);
  },
};

/**
 * How many times the statistics were thrown away (a replay's reset): a refresh that began before one
 * must not write what it counted over what the replay rebuilds (it would count items twice).
 */
const countResets: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('statistics_resets')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('resets', 'bigint', (c) => c.notNull())
      .execute();
    await sql`INSERT INTO statistics_resets (id, resets) VALUES (1, 0)`.execute(db);
  },
};

export const statisticsMigrations: MigrationSet = {
  owner: 'statistics',
  migrations: {
    '0001_create_statistics': createStatistics,
    '0002_names_in_byte_order': namesInByteOrder,
    '0003_roll_ups': createRollUps,
    '0004_count_resets': countResets,
  },
};
