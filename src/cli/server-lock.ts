import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** A process that holds the database: a server, or a replay. */
export interface LockHolder {
  readonly pid: number;
  readonly command: string;
}

export interface ServerLock {
  release(): void;
}

/**
 * A pid file beside the SQLite database (`<file>.pid`), held by `intake serve` and `intake replay`.
 * A file left by a process that died without cleaning up (kill -9, power loss) names a pid that no
 * longer runs, and is taken over.
 */
export function lockHolder(databasePath: string): LockHolder | undefined {
  let text: string;
  try {
    text = readFileSync(lockFileOf(databasePath), 'utf8');
  } catch {
    return undefined;
  }
  const [pidText, command = 'intake'] = text.trim().split(/\s+/);
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || !isAlive(pid)) return undefined;
  return { pid, command };
}

/** Takes the lock, or answers who holds it. */
export function acquireLock(databasePath: string, command: string): ServerLock | LockHolder {
  // An in-memory database belongs to its process alone.
  if (databasePath === ':memory:') return { release: () => undefined };
  const holder = lockHolder(databasePath);
  if (holder) return holder;
  const file = lockFileOf(databasePath);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${process.pid} ${command}\n`, { mode: 0o600 });
  return {
    release() {
      // Only our own file: a later process may have taken over a lock we lost track of.
      if (lockHolderPid(file) === process.pid) rmSync(file, { force: true });
    },
  };
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

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
