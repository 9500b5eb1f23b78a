import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { watchForSilentServer } from './silent-server-watch.js';
import { withoutPassword } from './connection-url.js';
import { reportBusyPool } from './busy-pool.js';
import { DEFAULT_POOL_SIZE } from './pool-size.js';

export { withoutPassword };

export interface PostgresHandle {
  readonly db: Kysely<object>;
  readonly pool: pg.Pool;
  /** Where this handle's unqualified tables live: each service role keeps its tables in a schema named after it. */
  readonly schema: string;
  close(): Promise<void>;
}

export interface OpenPostgresOptions {
  readonly url: string;
  readonly schema: string;
  readonly maxConnections?: number;
  /** How long PostgreSQL lets a connection of this pool sit idle inside a transaction (default 60 s). */
  readonly idleInTransactionTimeoutMs?: number;
  /** How long a query waits before the pool checks that the server still answers (default 5 s). */
  readonly stallMs?: number;
  /** How long a statement waits for a lock before it fails (default 10 s; migrations wait as long as it takes). */
  readonly lockTimeoutMs?: number;
}

/**
 * A transaction that stops talking (its process frozen, or cut off from the server without a word)
 * would hold its locks until TCP noticed, hours later: an appending one holds its log's lock, and with
 * it every other append to that log. None of ours waits on anything outside PostgreSQL while it is open.
 */
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000;

/**
 * A table someone locked (`LOCK TABLE`, `ALTER TABLE`, `VACUUM FULL` by an operator) held every write
 * that needed it for as long as the lock lasted, and behind a subscriber's transaction that waited on a
 * view with the log's lock in hand, every append: requests hung for minutes. A statement that waits
 * this long for a lock fails instead, and the request gets 503 `storage.busy` (storage-fault.ts).
 */
export const LOCK_TIMEOUT_MS = 10_000;

/** A subscriber's transaction waits at most this long for a lock (or the lock timeout, if shorter): see `schemaFence`. */
export const SUBSCRIBER_LOCK_WAIT_MS = 1_000;

const STALL_MS = 5_000;
const PROBE_TIMEOUT_MS = 2_000;

// A schema name goes into a startup option and a DDL statement, where it cannot be a bound parameter.
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Opens a pool whose every connection starts with `search_path` set to `schema` (created when missing),
 * so migrations and queries use unqualified table names and one cluster can host one schema per service.
 */
export async function openPostgres(options: OpenPostgresOptions): Promise<PostgresHandle> {
  const { schema } = options;
  if (!SCHEMA_NAME.test(schema)) {
    const why =
      schema.length > 63
        ? `it has ${schema.length} characters, more than PostgreSQL's 63 (shorten DB_SCHEMA_PREFIX)`
        : 'use lower-case letters, digits and _, starting with a letter or _';
    throw new Error(`invalid PostgreSQL schema name "${schema}": ${why}`);
  }

  const bootstrap = new pg.Client({ connectionString: options.url });
  try {
    await bootstrap.connect();
    await bootstrap.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  } catch (error) {
    throw new Error(`cannot prepare PostgreSQL at ${withoutPassword(options.url)} (schema ${schema}): ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    await bootstrap.end().catch(() => undefined);
  }

  const idleTimeout = Math.max(1, Math.round(options.idleInTransactionTimeoutMs ?? IDLE_IN_TRANSACTION_TIMEOUT_MS));
  const lockTimeout = Math.max(1, Math.round(options.lockTimeoutMs ?? LOCK_TIMEOUT_MS));
  const poolSize = options.maxConnections ?? DEFAULT_POOL_SIZE;
  const pool = new pg.Pool({
    connectionString: options.url,
    max: poolSize,
    // Fail fast while PostgreSQL is down: requests answer 503 at once instead of queueing.
    connectionTimeoutMillis: 2000,
    // Startup options rather than a SET after connect: no extra round trip, and no connection without them.
    options: `-c search_path=${schema} -c idle_in_transaction_session_timeout=${idleTimeout} -c lock_timeout=${lockTimeout}`,
  });
  // A connection that breaks (PostgreSQL restarted, network cut) emits 'error': the pool drops idle ones,
  // but nobody listens on a checked-out one, and an unheard 'error' event ends the process. The query in
  // flight is rejected all the same, and the request answers 503.
  pool.on('error', () => undefined);
  reportBusyPool(pool, poolSize);
  pool.on('connect', (client) => client.on('error', () => undefined));
  const stopWatch = watchForSilentServer(pool, {
    url: options.url,
    stallMs: options.stallMs ?? STALL_MS,
    probeTimeoutMs: PROBE_TIMEOUT_MS,
  });
  const db = new Kysely<object>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    pool,
    schema,
    close: () => {
      stopWatch();
      // Kysely ends the pool it was given.
      return db.destroy();
    },
  };
}
