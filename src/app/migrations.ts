import { sqliteEventStoreMigrations } from '../shared/event-store/sqlite/migrations.js';
import type { MigrationSet } from '../shared/sqlite/migrate.js';
import { subscriptionMigrations } from '../shared/subscriptions/migrations.js';
import { CONTEXTS } from './catalog.js';
import type { ContextTables } from '../shared/context-module.js';

/** Every context's tables in the embedded mode (one SQLite file): disabled contexts keep theirs too. */
export const embeddedTables: readonly ContextTables[] = CONTEXTS.map((context) => context.tables);

/** What every store keeps beside its log, whatever the database: the subscriptions' checkpoints. */
export const sharedMigrations: readonly MigrationSet[] = [subscriptionMigrations];

/** The event store first, then the subscriptions' checkpoints, then each context's own tables. */
export const embeddedMigrations: readonly MigrationSet[] = [
  sqliteEventStoreMigrations,
  ...sharedMigrations,
  ...embeddedTables.flatMap((t) => t.migrations),
];
