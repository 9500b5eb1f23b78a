import { PostgresAdapter, sql, type Kysely, type Migration } from 'kysely';
import type { MigrationSet } from '../../../shared/sqlite/migrate.js';
import { requestReplay } from '../../../shared/subscriptions/checkpoints.js';
import { addListPositions } from '../../../shared/sql/list-positions.js';

const createItems: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('query_items')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('partner_id', 'text', (c) => c.notNull())
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('payload', 'text')
      .addColumn('received_at', 'text', (c) => c.notNull())
      .addColumn('validation', 'text')
      .addColumn('processing', 'text')
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('query_items_partner').on('query_items').columns(['partner_id', 'id']).execute();
    await db.schema.createIndex('query_items_status').on('query_items').columns(['status', 'id']).execute();
  },
};

const addMetadataAndDeliveries: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable('query_items').addColumn('metadata', 'text').execute();
    await db.schema
      .alterTable('query_items')
      .addColumn('deliveries', 'text', (c) => c.notNull().defaultTo('[]'))
      .execute();
    await db.schema.createIndex('query_items_partner_type').on('query_items').columns(['partner_id', 'event_type', 'id']).execute();
  },
};

const createItemEvents: Migration = {
  async up(db: Kysely<unknown>) {
    // The query service's own copy of each item's events, for history and as_of when the log lives elsewhere.
    await db.schema
      .createTable('query_item_events')
      .addColumn('item_id', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('data', 'text', (c) => c.notNull())
      .addColumn('recorded_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('query_item_events_pk', ['item_id', 'event_id'])
      .execute();
  },
};

const payloadAsJsonb: Migration = {
  async up(db: Kysely<unknown>) {
    // PostgreSQL only: the payload becomes jsonb with a GIN index for containment (`@>`), which is what
    // payload filters compile to. SQLite keeps text and filters with json_extract.
    if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return;
    // jsonb refuses the NUL character, which json text may escape: the view shows U+FFFD instead.
    await sql`ALTER TABLE query_items ALTER COLUMN payload TYPE jsonb USING replace(payload, '\\u0000', '\\ufffd')::jsonb`.execute(db);
    await sql`CREATE INDEX query_items_payload ON query_items USING gin (payload jsonb_path_ops)`.execute(db);
  },
};

/**
 * PostgreSQL only: jsonb keeps no key order, so the view answered `{"a":2,"z":1}` for a payload sent as
 * `{"z":1,"a":2}`, where SQLite and the log answer it as sent. The payload is kept as written (json) and
 * the GIN index covers its jsonb form, which payload filters compare with. Views written before keep the
 * reordered keys until they are rebuilt, which this asks for.
 */
const payloadAsWritten: Migration = {
  async up(db: Kysely<unknown>) {
    if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return;
    await sql`DROP INDEX query_items_payload`.execute(db);
    await sql`ALTER TABLE query_items ALTER COLUMN payload TYPE json USING payload::json`.execute(db);
    await sql`CREATE INDEX query_items_payload ON query_items USING gin ((payload::jsonb) jsonb_path_ops)`.execute(db);
    const held = await sql<{ id: string }>`SELECT id FROM query_items LIMIT 1`.execute(db);
    if (held.rows.length > 0)
      await requestReplay(db as Kysely<object>, 'query', 'payloads are kept as written: jsonb had reordered their keys');
  },
};

/**
 * Lists follow the order in which items became visible, not their ids (decision 0043): `seq` numbers
 * each row as the view first writes it. Rows written before take their ids' order.
 */
const listInVisibleOrder: Migration = {
  async up(db: Kysely<unknown>) {
    await addListPositions(db, 'query_items', [
      ['query_items_partner', ['partner_id']],
      ['query_items_status', ['status']],
      ['query_items_partner_type', ['partner_id', 'event_type']],
    ]);
  },
};

export const queryMigrations: MigrationSet = {
  owner: 'query',
  migrations: {
    '0001_create_query_items': createItems,
    '0002_add_metadata_and_deliveries': addMetadataAndDeliveries,
    '0003_create_item_events': createItemEvents,
    '0004_payload_as_jsonb': payloadAsJsonb,
    '0005_payload_as_written': payloadAsWritten,
    '0006_list_in_visible_order': listInVisibleOrder,
  },
};
