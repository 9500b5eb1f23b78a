import { resolve } from 'node:path';
import { ConfigError, loadConfig } from '../app/config.js';
import { sqlitePathFromUrl } from '../shared/sqlite/open-sqlite.js';

const DISK_FULL = /database or disk is full|ENOSPC/;

/**
 * What `intake` prints when a command fails. SQLite's "database or disk is full" names no file: a
 * start on a full disk said only that, and an operator had to guess which disk.
 */
export function failureMessage(error: unknown, env: NodeJS.ProcessEnv = process.env): string {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof ConfigError) return `configuration error: ${message}`;
  if (!DISK_FULL.test(message)) return message;
  const database = sqliteFileOf(env);
  return database === undefined
    ? message
    : `${message}: the file system holding ${database} has no space left; free some there, then start again`;
}

function sqliteFileOf(env: NodeJS.ProcessEnv): string | undefined {
  try {
    const { databaseUrl } = loadConfig(env);
    return databaseUrl.startsWith('sqlite:') ? resolve(sqlitePathFromUrl(databaseUrl)) : undefined;
  } catch {
    return undefined;
  }
}
