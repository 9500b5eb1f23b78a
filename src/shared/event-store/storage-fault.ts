import { UnavailableError } from '../errors.js';

// SQLite result codes (better-sqlite3 puts them in `code`) and PostgreSQL SQLSTATE classes that
// mean the database cannot work now, whatever the request: full disk, read-only or failing files,
// locks, lost connections, a server shutting down or out of resources.
const SQLITE_FAULTS = /^SQLITE_(FULL|READONLY|IOERR|CANTOPEN|BUSY|LOCKED|NOMEM|PROTOCOL|CORRUPT|NOTADB)/;
const POSTGRES_FAULT_CLASSES = /^(08|53|57|58)/;
// A table, column or schema the code relies on is missing (someone changed the database under a running
// Intake, or restored an older copy): no event or request is at fault, and none should be parked for it.
const SQLITE_MISSING_SCHEMA = /^(no such (table|column)|table \S+ has no column named)/;
const POSTGRES_MISSING_SCHEMA = new Set(['42P01', '42703', '3F000']);
const NETWORK_FAULTS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND']);

/** Whether an error says a table or column is missing (dropped or renamed under a running Intake). */
export function isMissingSchema(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'SQLITE_ERROR') return SQLITE_MISSING_SCHEMA.test((error as Error).message);
  return typeof code === 'string' && POSTGRES_MISSING_SCHEMA.has(code);
}

// What the pg driver and pool say, without a code, when a connection is lost or cannot be had.
const CONNECTION_MESSAGES =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error/i;

/**
 * Whether an error says the database (or another server) cannot be reached now: a socket error, a
 * PostgreSQL connection, resource, shutdown or system error, a database not accepting connections
 * (`ALTER DATABASE … ALLOW_CONNECTIONS false`), a pool that could not get a connection. The request may
 * succeed later: 503, not 500.
 */
function isUnreachable(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  const text = typeof message === 'string' ? message : '';
  if (typeof code !== 'string') return CONNECTION_MESSAGES.test(text);
  if (code === '55000' && /not currently accepting connections/.test(text)) return true;
  return POSTGRES_FAULT_CLASSES.test(code) || NETWORK_FAULTS.has(code) || CONNECTION_MESSAGES.test(text);
}

/**
 * Whether PostgreSQL ended the transaction to break a deadlock (40P01) or could not serialize it
 * (40001): nothing is wrong with it, and run again it goes through, as the other one has finished.
 */
export function lostToAnotherTransaction(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '40P01' || code === '40001';
}

/** Whether PostgreSQL gave up waiting for a lock (55P03, `lock_timeout`): someone holds a table Intake writes. */
export function waitedTooLongForALock(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '55P03';
}

/** Whether an error is the storage failing rather than the request or event being wrong. */
export function isStorageFault(error: unknown): boolean {
  if (error instanceof UnavailableError) return true;
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'SQLITE_ERROR') return SQLITE_MISSING_SCHEMA.test((error as Error).message);
  if (typeof code === 'string' && (SQLITE_FAULTS.test(code) || POSTGRES_MISSING_SCHEMA.has(code))) return true;
  // Ended to break a deadlock: no event of a subscriber's is at fault (none is parked for it), and a
  // request may simply be sent again (503, not 500).
  if (lostToAnotherTransaction(error)) return true;
  if (waitedTooLongForALock(error)) return true;
  return isUnreachable(error);
}

/** A storage fault as callers see it: retry later (503 with Retry-After), with the database's own words. */
export function storageUnavailable(error: unknown): UnavailableError {
  if (waitedTooLongForALock(error)) {
    const busy = new UnavailableError(
      'storage.busy',
      `a table this write needs has been locked by another session for too long (${(error as Error).message}); retry shortly`,
      2,
    );
    busy.cause = error;
    return busy;
  }
  const full = /SQLITE_FULL|^53100$/.test(String((error as { code?: unknown }).code));
  const unavailable = new UnavailableError(
    full ? 'storage.full' : 'storage.unavailable',
    `the database cannot take writes now (${(error as Error).message}); retry shortly`,
    full ? 30 : 5,
  );
  unavailable.cause = error;
  return unavailable;
}

/** The store's state as readiness reports it: the last fault, until a commit succeeds again. */
export interface StorageHealth {
  readonly fault: { readonly since: string; readonly message: string } | undefined;
}

export function storageHealthTracker(now: () => Date = () => new Date()) {
  let fault: StorageHealth['fault'];
  return {
    failed(error: unknown) {
      fault ??= { since: now().toISOString(), message: (error as Error).message };
      fault = { since: fault.since, message: (error as Error).message };
    },
    succeeded() {
      fault = undefined;
    },
    get health(): StorageHealth {
      return { fault };
    },
  };
}
