import { sql, type Kysely, type Migration } from 'kysely';
import type { MigrationSet } from '../../../shared/sqlite/migrate.js';
import { addListPositions } from '../../../shared/sql/list-positions.js';
import { UNKNOWN_KIND_FINGERPRINT } from './idempotency-table.js';

const createIngestItems: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('ingest_items')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('partner_id', 'text', (c) => c.notNull())
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('payload', 'text', (c) => c.notNull())
      .addColumn('metadata', 'text', (c) => c.notNull())
      .addColumn('received_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('ingest_items_partner').on('ingest_items').columns(['partner_id', 'id']).execute();
  },
};

const createIdempotency: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('ingest_idempotency')
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('idem_key', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('routing', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('ingest_idempotency_pk', ['app_id', 'idem_key'])
      .execute();
  },
};

// GET /ingest/{id} answers the item's current pipeline status, kept by the item-status subscriber.
const addItemStatus: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .alterTable('ingest_items')
      .addColumn('status', 'text', (c) => c.notNull().defaultTo('ingested'))
      .execute();
  },
};

// What a keyed request asked for, so a key sent again with another request is told apart from a retry.
const addIdempotencyFingerprint: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable('ingest_idempotency').addColumn('fingerprint', 'text').execute();
  },
};

/**
 * Since fingerprints, a record without one is a message id's; the records stored before them, of
 * either kind, were taken for message ids too, so a request retried across the upgrade was stored
 * twice. They are marked (`UNKNOWN_KIND_FINGERPRINT`): those made before 0004 ran on this database.
 */
const markRecordsOfUnknownKind: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`UPDATE ingest_idempotency SET fingerprint = ${UNKNOWN_KIND_FINGERPRINT}
              WHERE fingerprint IS NULL
                AND created_at < (SELECT "timestamp" FROM ingestion_migrations WHERE name = '0004_add_idempotency_fingerprint')`.execute(
      db,
    );
  },
};

// Lists follow the order in which items became visible, not their ids (decision 0043).
const listInVisibleOrder: Migration = {
  async up(db: Kysely<unknown>) {
    await addListPositions(db, 'ingest_items', [['ingest_items_partner', ['partner_id']]]);
  },
};

// Records past their window are deleted, oldest first (application/idempotency-pruner.ts).
const idempotencyByCreation: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.createIndex('ingest_idempotency_created').on('ingest_idempotency').columns(['created_at']).execute();
  },
};

export const ingestionMigrations: MigrationSet = {
  owner: 'ingestion',
  migrations: {
    '0001_create_ingest_items': createIngestItems,
    '0002_create_idempotency': createIdempotency,
    '0003_add_item_status': addItemStatus,
    '0004_add_idempotency_fingerprint': addIdempotencyFingerprint,
    '0005_list_in_visible_order': listInVisibleOrder,
    '0006_mark_records_of_unknown_kind': markRecordsOfUnknownKind,
    '0007_idempotency_by_creation': idempotencyByCreation,
  },
};
