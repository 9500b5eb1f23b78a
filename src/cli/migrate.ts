import type { Logger } from 'pino';
import { isPostgresUrl, postgresSchemaOf, type Config } from '../app/config.js';
import { ROLE_CONTEXTS } from '../app/distributed.js';
import { embeddedMigrations, embeddedTables, sharedMigrations } from '../app/migrations.js';
import { ROLES } from '../app/roles.js';
import { postgresEventStoreMigrations } from '../shared/event-store/postgres/migrations.js';
import { migratePostgresToLatest } from '../shared/postgres/migrate.js';
import { openPostgres } from '../shared/postgres/open-postgres.js';
import { migrateToLatest } from '../shared/sqlite/migrate.js';
import { openSqlite, sqlitePathFromUrl } from '../shared/sqlite/open-sqlite.js';
import { subscriptionMigrations } from '../shared/subscriptions/migrations.js';
import { CliError } from './cli-error.js';
import type { Output } from './output.js';
import { describeHolder, lockRolesForReplay, lockSchemaExclusively, schemaPlace } from './role-lock.js';
import { acquireLock, describeLockHolder, isHolder } from './server-lock.js';

/**
 * Applies pending migrations: the SQLite file, or each role's PostgreSQL schema. Meant for a stopped
 * server, like replay: refused while one runs on the database, whose code may not know the new shape
 * (`intake serve` migrates at start, under its own lock).
 */
export async function migrate(config: Config, logger: Logger, output: Output): Promise<void> {
  if (isPostgresUrl(config.databaseUrl) && !config.distributed) {
    const lock = await lockSchemaExclusively(
      config,
      'migrate',
      (holder) => `a running Intake (${describeHolder(holder)}) holds ${schemaPlace(config)}: stop it first`,
    );
    try {
      const postgres = await openPostgres({ url: config.databaseUrl, schema: postgresSchemaOf(config) });
      try {
        const sets = [postgresEventStoreMigrations, ...sharedMigrations, ...embeddedTables.flatMap((t) => t.migrations)];
        report(logger, output, await migratePostgresToLatest(postgres, sets), `schema ${postgres.schema}`);
      } finally {
        await postgres.close();
      }
    } finally {
      await lock.release();
    }
    return;
  }
  if (config.distributed) {
    const roles = config.roles === 'all' ? ROLES : config.roles;
    const lock = await lockRolesForReplay(config, roles, 'migrate');
    try {
      for (const role of roles) {
        const postgres = await openPostgres({ url: config.databaseUrl, schema: postgresSchemaOf(config, role) });
        try {
          const sets = [postgresEventStoreMigrations, subscriptionMigrations, ...ROLE_CONTEXTS[role].flatMap((c) => c.tables.migrations)];
          report(logger, output, await migratePostgresToLatest(postgres, sets), `schema ${postgres.schema}`);
        } finally {
          await postgres.close();
        }
      }
    } finally {
      await lock.release();
    }
    return;
  }
  const path = sqlitePathFromUrl(config.databaseUrl);
  const lock = acquireLock(path, 'migrate');
  if (isHolder(lock)) throw new CliError(`a running Intake (${describeLockHolder(lock)}) holds ${path}: stop it first`);
  try {
    const sqlite = openSqlite(path);
    try {
      report(logger, output, await migrateToLatest(sqlite.db, embeddedMigrations), path);
    } finally {
      await sqlite.close();
    }
  } finally {
    lock.release();
  }
}

function report(logger: Logger, output: Output, applied: string[], where: string): void {
  logger.debug({ applied, database: where }, 'migrations');
  output.result(
    applied.length > 0 ? `${where}: applied ${applied.length} migration(s): ${applied.join(', ')}` : `${where}: database is up to date`,
    { database: where, applied },
  );
}
