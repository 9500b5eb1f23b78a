import type { Logger } from 'pino';
import type { Config } from '../app/config.js';
import { ROLE_CONTEXTS } from '../app/distributed.js';
import { embeddedMigrations, embeddedTables, sharedMigrations } from '../app/migrations.js';
import { isPostgresUrl } from '../app/storage-core.js';
import { ROLES } from '../app/roles.js';
import { postgresEventStoreMigrations } from '../shared/event-store/postgres/migrations.js';
import { migratePostgresToLatest } from '../shared/postgres/migrate.js';
import { openPostgres } from '../shared/postgres/open-postgres.js';
import { migrateToLatest } from '../shared/sqlite/migrate.js';
import { openSqlite, sqlitePathFromUrl } from '../shared/sqlite/open-sqlite.js';
import { subscriptionMigrations } from '../shared/subscriptions/migrations.js';

/** Applies pending migrations: the SQLite file, or each role's PostgreSQL schema. */
export async function migrate(config: Config, logger: Logger): Promise<void> {
  if (isPostgresUrl(config.databaseUrl) && !config.distributed) {
    const postgres = await openPostgres({ url: config.databaseUrl, schema: `${config.schemaPrefix}intake` });
    try {
      const sets = [postgresEventStoreMigrations, ...sharedMigrations, ...embeddedTables.flatMap((t) => t.migrations)];
      report(logger, await migratePostgresToLatest(postgres, sets), postgres.schema);
    } finally {
      await postgres.close();
    }
    return;
  }
  if (config.distributed) {
    for (const role of config.roles === 'all' ? ROLES : config.roles) {
      const postgres = await openPostgres({ url: config.databaseUrl, schema: `${config.schemaPrefix}${role}` });
      try {
        const sets = [postgresEventStoreMigrations, subscriptionMigrations, ...ROLE_CONTEXTS[role].flatMap((c) => c.tables.migrations)];
        report(logger, await migratePostgresToLatest(postgres, sets), postgres.schema);
      } finally {
        await postgres.close();
      }
    }
    return;
  }
  const sqlite = openSqlite(sqlitePathFromUrl(config.databaseUrl));
  try {
    report(logger, await migrateToLatest(sqlite.db, embeddedMigrations), 'sqlite');
  } finally {
    await sqlite.close();
  }
}

function report(logger: Logger, applied: string[], where: string): void {
  logger.info({ applied, database: where }, applied.length > 0 ? `applied ${applied.length} migration(s)` : 'database is up to date');
}
