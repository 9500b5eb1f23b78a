import type { Logger } from 'pino';
import type { Config } from '../app/config.js';
import { embeddedMigrations } from '../app/migrations.js';
import { migrateToLatest } from '../shared/sqlite/migrate.js';
import { openSqlite, sqlitePathFromUrl } from '../shared/sqlite/open-sqlite.js';

export async function migrate(config: Config, logger: Logger): Promise<void> {
  const sqlite = openSqlite(sqlitePathFromUrl(config.databaseUrl));
  try {
    const applied = await migrateToLatest(sqlite.db, embeddedMigrations);
    logger.info({ applied }, applied.length > 0 ? `applied ${applied.length} migration(s)` : 'database is up to date');
  } finally {
    await sqlite.close();
  }
}
