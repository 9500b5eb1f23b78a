import type { Kysely, Migration } from 'kysely';
import type { MigrationSet } from '../../../shared/sqlite/migrate.js';
import { byteOrderColumns } from '../../../shared/postgres/byte-order-columns.js';

const createTables: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('applications')
      .addColumn('app_id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('write_keys')
      .addColumn('key_id', 'text', (c) => c.primaryKey())
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('name', 'text')
      .addColumn('secret_digest', 'text', (c) => c.notNull())
      .addColumn('issued_at', 'text', (c) => c.notNull())
      .addColumn('revoked_at', 'text')
      .execute();
    await db.schema.createIndex('write_keys_app').on('write_keys').columns(['app_id', 'issued_at']).execute();
  },
};

// Applications are listed by id, paged with `app_id > cursor`: by bytes on PostgreSQL too, as on SQLite.
const appIdInByteOrder = byteOrderColumns({ applications: ['app_id'] });

export const applicationMigrations: MigrationSet = {
  owner: 'applications',
  migrations: {
    '0001_create_applications_and_write_keys': createTables,
    '0002_app_id_in_byte_order': appIdInByteOrder,
  },
};
