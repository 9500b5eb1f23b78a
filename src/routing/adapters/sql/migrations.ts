import type { Kysely, Migration } from 'kysely';
import type { MigrationSet } from '../../../shared/sqlite/migrate.js';

const createTables: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('routing_rules')
      .addColumn('rule_id', 'text', (c) => c.primaryKey())
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('rule', 'text', (c) => c.notNull())
      .addColumn('priority', 'integer', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('routing_rules_app').on('routing_rules').columns(['app_id', 'priority']).execute();
    await db.schema
      .createTable('routing_secrets')
      .addColumn('rule_id', 'text', (c) => c.primaryKey())
      .addColumn('secret', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('routing_deliveries')
      .addColumn('delivery_id', 'text', (c) => c.primaryKey())
      .addColumn('rule_id', 'text', (c) => c.notNull())
      .addColumn('item_id', 'text', (c) => c.notNull())
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('destination_type', 'text', (c) => c.notNull())
      .addColumn('body', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull())
      .addColumn('next_attempt_at', 'text')
      .addColumn('lease_until', 'text')
      .addColumn('last_error', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('routing_deliveries_due').on('routing_deliveries').columns(['status', 'next_attempt_at']).execute();
    await db.schema.createIndex('routing_deliveries_item').on('routing_deliveries').columns(['item_id']).execute();
    await db.schema.createIndex('routing_deliveries_rule').on('routing_deliveries').columns(['rule_id', 'created_at']).execute();
    await db.schema
      .createTable('routing_attempts')
      .addColumn('delivery_id', 'text', (c) => c.notNull())
      .addColumn('attempt', 'integer', (c) => c.notNull())
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('outcome', 'text', (c) => c.notNull())
      .addColumn('status_code', 'integer')
      .addColumn('error', 'text')
      .addColumn('duration_ms', 'real', (c) => c.notNull())
      .addPrimaryKeyConstraint('routing_attempts_pk', ['delivery_id', 'attempt'])
      .execute();
    await db.schema
      .createTable('routing_destination_tables')
      .addColumn('table_name', 'text', (c) => c.primaryKey())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
  },
};

export const routingMigrations: MigrationSet = {
  owner: 'routing',
  migrations: { '0001_create_rules_deliveries_attempts': createTables },
};
