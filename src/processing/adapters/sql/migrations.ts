import type { Kysely, Migration } from 'kysely';
import type { MigrationSet } from '../../../shared/sqlite/migrate.js';
import { byteOrderColumns } from '../../../shared/postgres/byte-order-columns.js';

const createTables: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('processing_pipelines')
      .addColumn('event_type', 'text', (c) => c.primaryKey())
      .addColumn('steps', 'text', (c) => c.notNull())
      .addColumn('configured_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('processing_outcomes')
      .addColumn('item_id', 'text', (c) => c.primaryKey())
      .addColumn('outcome', 'text', (c) => c.notNull())
      .addColumn('position', 'bigint', (c) => c.notNull())
      .execute();
  },
};

// Pipelines are listed by event type, paged with `event_type > cursor`: by bytes on every database.
const eventTypeInByteOrder = byteOrderColumns({ processing_pipelines: ['event_type'] });

export const processingMigrations: MigrationSet = {
  owner: 'processing',
  migrations: {
    '0001_create_pipelines_and_outcomes': createTables,
    '0002_event_type_in_byte_order': eventTypeInByteOrder,
  },
};
