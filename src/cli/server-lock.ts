import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { CliError } from './cli-error.js';

/** A process that holds the database: a server, or a replay. */
export interface LockHolder {
  /** Unknown when the holder has not written its pid file yet, or it was removed. */
  readonly pid: number | undefined;
  readonly command: string;
}

export interface ServerLock {
  release(): void;
}

/** The holder as messages name it: `pid 12, intake serve`. */
export const describeLockHolder = (holder: LockHolder) =>
  `${holder.pid === undefined ? 'pid unknown' : `pid ${holder.pid}`}, intake ${holder.command}`;

/**
 * Takes the database for this process, or answers who holds it. The lock is SQLite's own exclusive
 * lock on a small file beside the database (`<file>.lock`), held by a connection for as long as the
 * process runs: the operating system drops it when the process ends however it ends, two processes
 * starting at once cannot both get it, and it works where pids mean nothing (two containers on one
 * volume are both pid 1). The pid file beside it (`<file>.pid`) only says who holds it, for messages.
 */
export function acquireLock(databasePath: string, command: string): ServerLock | LockHolder {
  // An in-memory database belongs to its process alone.
  if (databasePath === ':memory:') return { release: () => undefined };
  const file = lockFileOf(databasePath);
  let guard: Database.Database;
  const lockPath = `${databasePath}.lock`;
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    guard = new Database(lockPath, { timeout: 0 });
  } catch (error) {
    // The native addon missing or built for another Node is no fault of the data directory's.
    if (/bindings file|NODE_MODULE_VERSION|better_sqlite3\.node/.test((error as Error).message)) {
      throw new CliError(
        `cannot load SQLite (better-sqlite3): ${(error as Error).message}; run "npm ci" (or "npm rebuild better-sqlite3")`,
      );
    }
    // "unable to open database file" names neither the file nor why: a read-only or missing directory.
    const directory = dirname(resolve(databasePath));
    if (existsSync(directory) && writeRefusal(directory) !== undefined) throw directoryRefusal(directory);
    throw new CliError(`cannot use the data directory ${directory}: ${(error as Error).message}`);
  }
  // SQLite opens a file it may not write read-only without a word, and then its lock holds nobody off.
  // The database and its journals likewise: a file left by a run as another user (root, in a container
  // volume) failed the start with "attempt to write a readonly database", naming neither file nor owner.
  for (const path of [lockPath, databasePath, `${databasePath}-wal`, `${databasePath}-shm`]) {
    const refusal = path === lockPath || existsSync(path) ? writeRefusal(path) : undefined;
    if (refusal === undefined) continue;
    guard.close();
    // SQLite makes a file at its first write: a lock file not there yet is a directory nobody may write in.
    if (refusal === 'ENOENT') throw directoryRefusal(dirname(resolve(lockPath)));
    const what = path === lockPath ? 'lock' : 'write';
    throw new CliError(
      refusal === 'EROFS'
        ? `cannot ${what} ${resolve(path)}: the file system holding it is mounted read-only`
        : `cannot ${what} ${resolve(path)}: ${notWritableBy(path)}`,
    );
  }
  try {
    guard.pragma('locking_mode = EXCLUSIVE');
    guard.exec('BEGIN EXCLUSIVE');
  } catch (error) {
    guard.close();
    if ((error as { code?: string }).code === 'SQLITE_BUSY') return lockHolder(databasePath);
    // SQLite writes its journals beside the files: a directory this user may not write in said only
    // "attempt to write a readonly database".
    const directory = dirname(resolve(databasePath));
    if (writeRefusal(directory) !== undefined) throw directoryRefusal(directory);
    throw error;
  }
  writeFileSync(file, `${process.pid} ${command}\n`, { mode: 0o600 });
  return {
    release() {
      // Only our own file: nobody else can have written it while we held the lock.
      if (lockHolderPid(file) === process.pid) rmSync(file, { force: true });
      guard.close();
    },
  };
}

/** Who the pid file names; it may be gone, or name a pid of another machine or container. */
function lockHolder(databasePath: string): LockHolder {
  let text = '';
  try {
    text = readFileSync(lockFileOf(databasePath), 'utf8');
  } catch {
    return { pid: undefined, command: 'intake' };
  }
  const [pidText, command = 'intake'] = text.trim().split(/\s+/);
  const pid = Number(pidText);
  return { pid: Number.isInteger(pid) && pid > 0 ? pid : undefined, command };
}

export const lockFileOf = (databasePath: string) => `${databasePath}.pid`;

export const isHolder = (lock: ServerLock | LockHolder): lock is LockHolder => 'pid' in lock;

function lockHolderPid(file: string): number | undefined {
  try {
    return Number(readFileSync(file, 'utf8').trim().split(/\s+/)[0]);
  } catch {
    return undefined;
  }
}

/** Why this process may not write the file (EROFS, EACCES…), or undefined when it may. */
/** Why files cannot be made in a directory this user may not write. */
function directoryRefusal(directory: string): CliError {
  return new CliError(
    writeRefusal(directory) === 'EROFS'
      ? `cannot use the data directory ${directory}: the file system holding it is mounted read-only`
      : `cannot use the data directory ${directory}: this user may not make files in it; give it to the user Intake runs as`,
  );
}

/** Why this user may not write a file that is there: someone else's, or its own with the write bit off. */
function notWritableBy(path: string): string {
  const owner = statSync(path, { throwIfNoEntry: false })?.uid;
  return owner !== undefined && owner === process.getuid?.()
    ? 'its permissions do not let its owner, this user, write it (chmod u+w)'
    : 'this user may not write it (another user made it?); give it to the user Intake runs as';
}

function writeRefusal(path: string): string | undefined {
  try {
    accessSync(path, constants.W_OK);
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? 'EACCES';
  }
}
