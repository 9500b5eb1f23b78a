import { sqliteEventStoreMigrations } from '../shared/event-store/sqlite/migrations.js';
import type { MigrationSet } from '../shared/sqlite/migrate.js';
import { subscriptionMigrations } from '../shared/subscriptions/migrations.js';
import { ingestionMigrations } from '../ingestion/adapters/sql/migrations.js';
import { validationMigrations } from '../validation/adapters/sql/migrations.js';
import { processingMigrations } from '../processing/adapters/sql/migrations.js';
import { queryMigrations } from '../query/adapters/sql/migrations.js';

/** Every context's migrations for the embedded (single SQLite file) mode, the event store first. */
export const embeddedMigrations: readonly MigrationSet[] = [
  sqliteEventStoreMigrations,
  subscriptionMigrations,
  ingestionMigrations,
  validationMigrations,
  processingMigrations,
  queryMigrations,
];
