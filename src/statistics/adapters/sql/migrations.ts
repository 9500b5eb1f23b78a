import type { Kysely, Migration } from 'kysely';
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

export const statisticsMigrations: MigrationSet = {
  owner: 'statistics',
  migrations: { '0001_create_statistics': createStatistics, '0002_names_in_byte_order': namesInByteOrder },
};
