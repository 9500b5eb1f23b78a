import { sqliteEventStoreMigrations } from '../shared/event-store/sqlite/migrations.js';
import type { MigrationSet } from '../shared/sqlite/migrate.js';
import { subscriptionMigrations } from '../shared/subscriptions/migrations.js';
import type { ContextTables } from './context-module.js';
import { ingestionTables } from '../ingestion/module.js';
import { validationTables } from '../validation/module.js';
import { processingTables } from '../processing/module.js';
import { queryTables } from '../query/module.js';
import { applicationsTables } from '../applications/module.js';
import { routingTables } from '../routing/module.js';
import { trackingTables } from '../tracking/module.js';
import { attributionTables } from '../attribution/module.js';
import { statisticsTables } from '../statistics/module.js';
import { analyticsTables } from '../analytics/module.js';

/** Every context's tables in the embedded mode (one SQLite file). */
export const embeddedTables: readonly ContextTables[] = [
  applicationsTables,
  ingestionTables,
  validationTables,
  processingTables,
  queryTables,
  routingTables,
  trackingTables,
  attributionTables,
  statisticsTables,
  analyticsTables,
];

/** The event store first, then the subscriptions' checkpoints, then each context's own tables. */
export const embeddedMigrations: readonly MigrationSet[] = [
  sqliteEventStoreMigrations,
  subscriptionMigrations,
  ...embeddedTables.flatMap((t) => t.migrations),
];
