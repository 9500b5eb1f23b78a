import { resolve } from 'node:path';
import { ConfigError, loadConfig } from '../app/config.js';
import { sqlitePathFromUrl } from '../shared/sqlite/open-sqlite.js';
import { messageOf } from '../shared/errors.js';

const DISK_FULL = /database or disk is full|ENOSPC/;
const TOO_MANY_FILES = /EMFILE|too many open files/i;
/** Also said by bin/intake.js, for a failure while the first modules load. */
export const TOO_MANY_FILES_ADVICE =
  'Intake reads a few hundred files while it starts (the modules of its threads); raise the limit of open files, ulimit -n 1024 or more';

/**
 * What `intake` prints when a command fails. SQLite's "database or disk is full" names no file: a
 * start on a full disk said only that, and an operator had to guess which disk.
 */
export function failureMessage(error: unknown, env: NodeJS.ProcessEnv = process.env): string {
  const message = messageOf(error);
  if (error instanceof ConfigError) return `configuration error: ${message}`;
  if (TOO_MANY_FILES.test(message)) return `${message}: ${TOO_MANY_FILES_ADVICE}`;
  if (!DISK_FULL.test(message)) return message;
  // A file the error names (a key file in DATA_DIR), else SQLite's own words name its database.
  const named = (error as NodeJS.ErrnoException | null)?.path;
  const full = named ?? (/database or disk is full/.test(message) ? sqliteFileOf(env) : undefined);
  return full === undefined
    ? `${message}: a disk Intake writes to (DATA_DIR, the database) has no space left`
    : `${message}: the file system holding ${resolve(full)} has no space left; free some there, then start again`;
}

function sqliteFileOf(env: NodeJS.ProcessEnv): string | undefined {
  try {
    const { databaseUrl } = loadConfig(env);
    return databaseUrl.startsWith('sqlite:') ? resolve(sqlitePathFromUrl(databaseUrl)) : undefined;
  } catch {
    return undefined;
  }
}
