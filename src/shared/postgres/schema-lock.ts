import { createHash } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { UnavailableError } from '../errors.js';

/**
 * PostgreSQL advisory lock keys that tell who works on a schema (the embedded process's, or a
 * distributed role's). Each is a 64-bit number derived from the schema name, the same in every process.
 *
 * - The schema's key: a server holds it shared for as long as it runs (replicas of a role side by side),
 *   and so does each transaction of its subscribers; `intake replay` and `intake secret-key adopt` hold it
 *   exclusively. A subscriber transaction therefore never commits while one of those runs, even in the
 *   moment between a server losing the connection that held its lock and noticing it.
 * - The server key: held exclusively by the one embedded server of a schema (its subscribers keep
 *   checkpoints that a second process would contend for).
 * - The log key: held exclusively by a transaction that appends to the schema's event log, so that
 *   positions commit in the order they are taken (see the PostgreSQL event store).
 */
export function schemaLockKey(schema: string): string {
  return keyOf(`intake role ${schema}`);
}

export function serverLockKey(schema: string): string {
  return keyOf(`intake server ${schema}`);
}

/** Held by each transaction that appends to the schema's event log, from its first insert until it ends. */
export function logLockKey(schema: string): string {
  return keyOf(`intake log ${schema}`);
}

function keyOf(text: string): string {
  return createHash('sha256').update(text).digest().readBigInt64BE(0).toString();
}

/** A step a subscriber transaction runs first; it throws when it must not go on. */
export type Fence = (db: Kysely<object>) => Promise<void>;

/**
 * Takes the schema's key shared for the transaction, or throws an UnavailableError (a storage fault to
 * the subscriptions: they wait it out and retry, and park nothing) while a replay holds it exclusively.
 *
 * In the same statement it cuts the transaction's lock waits to `lockWaitMs`. A subscriber's transaction
 * takes the log's lock with its first append and then writes its views: waiting there on a table someone
 * locked, it held every append of the process behind it. It now gives up soon and retries with backoff,
 * and the appends go on meanwhile.
 */
export function schemaFence(schema: string, { lockWaitMs }: { lockWaitMs: number }): Fence {
  const key = schemaLockKey(schema);
  const lockTimeout = String(Math.max(1, Math.round(lockWaitMs)));
  return async (db) => {
    const { rows } = await sql<{ taken: boolean }>`
      SELECT pg_try_advisory_xact_lock_shared(${key}::bigint) AS taken, set_config('lock_timeout', ${lockTimeout}, true)`.execute(db);
    if (!rows[0]?.taken) {
      throw new UnavailableError(
        'subscriptions.schema-locked',
        `intake replay or intake secret-key adopt holds schema ${schema}: subscribers wait until it has finished`,
        5,
      );
    }
  };
}
