import { closeSync, existsSync, fsyncSync, openSync, rmSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { isPostgresUrl, type Config } from '../app/config.js';
import { generatedKeyFile } from '../routing/adapters/secrets/secret-box.js';
import { sqlitePathFromUrl } from '../shared/sqlite/open-sqlite.js';
import { CliError } from './cli-error.js';
import type { Output } from './output.js';

/**
 * Copies the SQLite database to a new file while Intake runs, as one consistent snapshot (`VACUUM
 * INTO`, on a read-only connection of its own). SQLite's online backup (the `sqlite3` shell's
 * `.backup`) starts over whenever another process writes, so under steady traffic it never ends.
 */
export async function backup(config: Config, output: Output, file: string | undefined): Promise<void> {
  if (!file) throw new CliError('intake backup FILE: name the file to write the copy to', 2);
  if (isPostgresUrl(config.databaseUrl))
    throw new CliError(
      'intake backup copies a SQLite database; on PostgreSQL, pg_dump the database (every schema of a deployment together)',
      2,
    );
  const source = sqlitePathFromUrl(config.databaseUrl);
  if (source === ':memory:') throw new CliError('an in-memory database has nothing to back up', 2);
  if (!existsSync(source)) throw new CliError(`no database at ${source} (DATABASE_URL)`);
  const target = resolve(file);
  if (target === resolve(source)) throw new CliError('the backup must go to another file than the database itself', 2);
  if (!statSync(dirname(target), { throwIfNoEntry: false })?.isDirectory()) {
    throw new CliError(`there is no directory ${dirname(target)} to write the backup into: make it first`, 2);
  }
  // Readable by its owner only, as the database is: it holds every payload. VACUUM INTO fills an empty file.
  try {
    closeSync(openSync(target, 'wx', 0o600));
  } catch (error) {
    // Never over a file, nor through a link, even one to nowhere.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST')
      throw new CliError(`${target} exists: a backup is written to a new file, never over one`, 2);
    throw error;
  }

  const started = performance.now();
  const db = new Database(source, { readonly: true, fileMustExist: true });
  try {
    // The snapshot waits for nothing but a checkpoint resetting the log at that moment.
    db.pragma('busy_timeout = 10000');
    db.prepare('VACUUM INTO ?').run(target);
  } catch (error) {
    rmSync(target, { force: true });
    throw new CliError(`could not back up ${source} to ${target}: ${(error as Error).message}`);
  } finally {
    db.close();
  }
  // Written through the page cache: on disk before the command says it is done.
  const written = openSync(target, 'r');
  try {
    fsyncSync(written);
  } finally {
    closeSync(written);
  }
  const bytes = statSync(target).size;
  const ms = Math.round(performance.now() - started);
  const key = config.secretKey === undefined ? generatedKeyFile(config.dataDir) : undefined;
  output.result(
    `backed up ${source} to ${target} (${(bytes / 1_048_576).toFixed(1)} MB in ${ms} ms)` +
      (key ? `; keep ${key} with it: the database's secrets are sealed with that key` : ''),
    { source, backup: target, bytes, ms, ...(key ? { secret_key_file: key } : {}) },
  );
}
