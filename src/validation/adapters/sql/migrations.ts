import type { Kysely, Migration } from 'kysely';
import type { MigrationSet } from '../../../shared/sqlite/migrate.js';
import { byteOrderColumns } from '../../../shared/postgres/byte-order-columns.js';

const createTables: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('validation_schemas')
      .addColumn('event_type', 'text', (c) => c.notNull())
      // '' stands for "every source": a NULL would not take part in the primary key.
      .addColumn('partner_id', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('schema', 'text') // NULL: this version removed the schema
      .addColumn('position', 'bigint', (c) => c.notNull())
      .addColumn('changed_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('validation_schemas_pk', ['event_type', 'partner_id', 'position'])
      .execute();
    await db.schema
      .createTable('validation_verdicts')
      .addColumn('item_id', 'text', (c) => c.primaryKey())
      .addColumn('verdict', 'text', (c) => c.notNull())
      .addColumn('position', 'bigint', (c) => c.notNull())
      .execute();
  },
};

// Schemas are listed by (event type, source), paged after the last key: by bytes on every database.
const keysInByteOrder = byteOrderColumns({ validation_schemas: ['event_type', 'partner_id'] });

export const validationMigrations: MigrationSet = {
  owner: 'validation',
  migrations: {
    '0001_create_schemas_and_verdicts': createTables,
    '0002_keys_in_byte_order': keysInByteOrder,
  },
};
