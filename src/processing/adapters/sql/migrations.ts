import { sql, type Kysely, type Migration } from 'kysely';
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

/**
 * Every configuration of a pipeline, so an item is processed by the one in force when it arrived, as
 * it is judged by the schema in force then: the one current row applied a change made after an item
 * arrived to that item. The configurations already there become versions as of when they were made.
 */
const pipelineVersions: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('processing_pipeline_versions')
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('position', 'bigint', (c) => c.notNull())
      .addColumn('configured_at', 'text', (c) => c.notNull())
      // null: the type went back to the default pipeline.
      .addColumn('steps', 'text')
      .addPrimaryKeyConstraint('processing_pipeline_versions_pk', ['event_type', 'position'])
      .execute();
    await sql`INSERT INTO processing_pipeline_versions (event_type, position, configured_at, steps)
      SELECT event_type, 0, configured_at, steps FROM processing_pipelines`.execute(db);
  },
};

export const processingMigrations: MigrationSet = {
  owner: 'processing',
  migrations: {
    '0001_create_pipelines_and_outcomes': createTables,
    '0002_event_type_in_byte_order': eventTypeInByteOrder,
    '0003_pipeline_versions': pipelineVersions,
  },
};
