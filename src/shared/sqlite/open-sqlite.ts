import { closeSync, mkdirSync, openSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect, type SqliteDatabase } from 'kysely';

export interface SqliteHandle {
  readonly raw: Database.Database;
  readonly db: Kysely<object>;
  /** The write-ahead log whose fsync makes a commit survive power loss; undefined for in-memory databases. */
  readonly walPath: string | undefined;
  close(): Promise<void>;
}

/**
 * One connection per process: SQLite allows one writer at a time, so a single connection
 * serialises writers without lock contention, and WAL keeps reads consistent.
 *
 * synchronous=NORMAL in WAL mode never corrupts the database; the event store adds the
 * per-commit durability itself by fsyncing the WAL off the event loop before it acknowledges
 * (docs/decisions/0002-group-commit-with-off-thread-fsync.md).
 */
export interface OpenSqliteOptions {
  readonly readonly?: boolean;
  /** WAL pages after which a commit checkpoints (SQLite's default is 1,000); see wal-checkpointer.ts. */
  readonly autocheckpointPages?: number;
}

/** The size the WAL file is cut back to when it restarts (SQLite leaves it as large as it ever grew). */
export const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

/**
 * Makes a new database file readable by its owner only: it holds every payload, and SQLite gives its
 * WAL and shared-memory files the database file's mode. Made by SQLite under the usual umask, it was
 * readable by every local user in a data directory that already existed. An existing file keeps its mode.
 */
function createPrivately(path: string): void {
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/**
 * What to tell of a database file every user of the machine may read (made 0644 by a release before
 * files were made private): it holds every payload, and rules' credentials from before they were sealed.
 */
export function readableByAll(path: string): string | undefined {
  if (path === ':memory:') return undefined;
  const mode = statSync(path, { throwIfNoEntry: false })?.mode;
  if (mode === undefined || (mode & 0o004) === 0) return undefined;
  const file = resolve(path);
  return `${file} is readable by every user of this machine (mode ${(mode & 0o777).toString(8)}) and holds every payload: chmod 600 ${file} ${file}-wal ${file}-shm`;
}

export function openSqlite(path: string, options: OpenSqliteOptions = {}): SqliteHandle {
  const inMemory = path === ':memory:';
  if (options.readonly) {
    // A reader beside the writer's connection (another thread): WAL lets it read while the writer commits.
    const raw = new Database(path, { readonly: true, fileMustExist: true });
    raw.pragma('busy_timeout = 5000');
    const db = new Kysely<object>({ dialect: new SqliteDialect({ database: withStatementCache(raw) }) });
    return { raw, db, walPath: undefined, close: () => db.destroy() };
  }
  let raw: Database.Database | undefined;
  try {
    if (!inMemory) {
      mkdirSync(dirname(path), { recursive: true });
      createPrivately(path);
    }
    raw = new Database(path);
    raw.pragma('journal_mode = WAL');
    raw.pragma('synchronous = NORMAL');
    if (options.autocheckpointPages !== undefined) raw.pragma(`wal_autocheckpoint = ${Math.trunc(options.autocheckpointPages)}`);
    raw.pragma('busy_timeout = 5000');
    raw.pragma('foreign_keys = ON');
    // A WAL that grew large (a burst, a reader holding an old snapshot) is cut back to this when it restarts.
    raw.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    // Take the write lock once: a read-only file or directory fails here, naming the file, not at the first write.
    if (!inMemory) raw.exec('BEGIN IMMEDIATE; ROLLBACK');
  } catch (error) {
    raw?.close();
    throw new Error(`cannot open the SQLite database ${inMemory ? path : resolve(path)} for writing: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const db = new Kysely<object>({ dialect: new SqliteDialect({ database: withStatementCache(raw) }) });
  return {
    raw,
    db,
    walPath: inMemory ? undefined : `${path}-wal`,
    close: () => db.destroy(),
  };
}

// Kysely prepares every query it runs; preparing costs more than running a small statement. The
// queries of a running service come from a few hundred texts (multi-row statements keep a few dozen
// sizes each: shared/sql/statement-shapes.ts), which all stay prepared.
const STATEMENT_CACHE_SIZE = 1000;

const NO_OP_STATEMENT = {
  reader: false,
  run: () => ({ changes: 0, lastInsertRowid: 0 }),
  all: () => [],
  iterate: () => [][Symbol.iterator](),
} as unknown as Database.Statement;

function withStatementCache(raw: Database.Database): SqliteDatabase {
  const cache = new Map<string, Database.Statement>();
  return {
    close: () => raw.close(),
    prepare(sql) {
      // SQLite itself rolls back a transaction that hit a full disk or an I/O error; a second
      // ROLLBACK would then fail and hide the real error behind "no transaction is active".
      if (sql === 'rollback' && !raw.inTransaction) return NO_OP_STATEMENT;
      let statement = cache.get(sql);
      if (!statement) {
        if (cache.size >= STATEMENT_CACHE_SIZE) cache.clear();
        statement = raw.prepare(sql);
        cache.set(sql, statement);
      }
      return statement;
    },
  };
}

export function sqlitePathFromUrl(url: string): string {
  if (!url.startsWith('sqlite:')) throw new Error(`not a sqlite URL: ${url}`);
  const rest = url.slice('sqlite:'.length);
  return realFile(rest.startsWith('//') ? rest.slice(2) : rest);
}

/**
 * The file a path names, through any symbolic link: SQLite keeps its WAL beside the file it opens,
 * the link's target, so the WAL Intake syncs and the lock that keeps a second server off must be named
 * after that file too (through a linked file, a start failed on a missing `-wal`, and a second server
 * could open the target by its own name).
 */
function realFile(path: string): string {
  if (path === ':memory:' || path === '') return path;
  try {
    return realpathSync(path);
  } catch {
    // Not made yet: its directory may be a link.
    try {
      return join(realpathSync(dirname(path)), basename(path));
    } catch {
      return path;
    }
  }
}
