import { existsSync } from 'node:fs';
import { isPostgresUrl, postgresSchemaOf, type Config } from '../app/config.js';
import { routingMigrations } from '../routing/adapters/sql/migrations.js';
import { adoptSecretKey } from '../routing/adapters/sql/sql-secret-key.js';
import { generatedKeyFile, resolveSecretKey, secretBox } from '../routing/adapters/secrets/secret-box.js';
import { migratePostgresToLatest } from '../shared/postgres/migrate.js';
import { openPostgres } from '../shared/postgres/open-postgres.js';
import { migrateToLatest } from '../shared/sqlite/migrate.js';
import { openSqlite, sqlitePathFromUrl } from '../shared/sqlite/open-sqlite.js';
import { CliError } from './cli-error.js';
import type { Output } from './output.js';
import { describeHolder, lockRolesForReplay, lockSchemaExclusively, schemaPlace } from './role-lock.js';
import { acquireLock, describeLockHolder, isHolder } from './server-lock.js';

/**
 * Makes this process's key (INTAKE_SECRET_KEY, or the one generated in the data directory) the key
 * the routing tables are sealed with, for when the old one is lost. Signing secrets and destination
 * credentials that do not open with it are dropped: their rules get a new secret with POST
 * /api/routing-rules/{id}/rotate-secret, and their credentials again with a PUT or PATCH of the rule.
 * Meant for a stopped server, like replay, and refused while one runs. Secrets are dropped only when
 * `yes` confirms it; otherwise the command says which would be, and changes nothing.
 */
export async function adoptKey(config: Config, output: Output, { yes }: { readonly yes: boolean }): Promise<void> {
  // Without either, a new key would be generated here and adopted: every secret dropped for a key nobody chose.
  if (config.secretKey === undefined && !existsSync(generatedKeyFile(config.dataDir))) {
    throw new CliError(
      `no key to adopt: INTAKE_SECRET_KEY is unset and ${generatedKeyFile(config.dataDir)} does not exist. ` +
        'Set INTAKE_SECRET_KEY to the key to keep, or DATA_DIR to the directory that holds its secret-key file',
    );
  }
  const box = secretBox(resolveSecretKey(config.secretKey, config.dataDir));
  const now = () => new Date();
  if (isPostgresUrl(config.databaseUrl)) {
    // The routing role's schema, or the one schema of a single process on PostgreSQL: refused while it runs.
    const lock = config.distributed
      ? await lockRolesForReplay(config, ['routing'], 'secret-key adopt')
      : await lockSchemaExclusively(
          config,
          'secret-key adopt',
          (holder) => `a running Intake (${describeHolder(holder)}) holds ${schemaPlace(config)}: stop it first`,
        );
    try {
      const postgres = await openPostgres({
        url: config.databaseUrl,
        schema: postgresSchemaOf(config, config.distributed ? 'routing' : undefined),
      });
      try {
        await migratePostgresToLatest(postgres, [routingMigrations]);
        report(output, await adoptSecretKey(postgres.db, box, now, { drop: yes }), `schema ${postgres.schema}`);
      } finally {
        await postgres.close();
      }
    } finally {
      await lock.release();
    }
    return;
  }
  const path = sqlitePathFromUrl(config.databaseUrl);
  // A mistyped path would make a new, empty database and report the key adopted.
  if (path !== ':memory:' && !existsSync(path)) throw new CliError(`there is no database at ${path}: check DATABASE_URL`);
  const lock = acquireLock(path, 'secret-key adopt');
  if (isHolder(lock)) throw new CliError(`a running Intake (${describeLockHolder(lock)}) holds ${path}: stop it first`);
  try {
    const sqlite = openSqlite(path);
    try {
      await migrateToLatest(sqlite.db, [routingMigrations]);
      report(output, await adoptSecretKey(sqlite.db, box, now, { drop: yes }), path);
    } finally {
      await sqlite.close();
    }
  } finally {
    lock.release();
  }
}

function report(output: Output, { unreadable, adopted }: { unreadable: string[]; adopted: boolean }, where: string): void {
  if (!adopted) {
    throw new CliError(
      `${where}: ${unreadable.length} rule(s) have a signing secret or destination credentials that do not open with this key, ` +
        `and adopting it would drop them. Nothing changed. If their key is lost for good, run again with --yes, then give ` +
        `each rule a new secret (POST /api/routing-rules/{id}/rotate-secret) or its credentials again (PUT or PATCH): ${unreadable.join(', ')}`,
    );
  }
  const human =
    unreadable.length === 0
      ? `${where}: this key is now the database's; every signing secret and destination credential opens with it`
      : `${where}: this key is now the database's; ${unreadable.length} rule(s) had a signing secret or destination ` +
        `credentials that did not open with it, and they were dropped.\n` +
        `Give each of these rules a new secret (POST /api/routing-rules/{id}/rotate-secret) or its credentials again ` +
        `(PUT or PATCH), then replay its dead letters:\n` +
        unreadable.join('\n');
  output.result(human, { database: where, dropped: unreadable });
}
