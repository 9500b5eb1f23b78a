import { sql, type Kysely } from 'kysely';
import { isStorageFault } from './storage-fault.js';
import { messageOf } from '../errors.js';

/**
 * One name for every savepoint. Both databases resolve a name to the innermost open savepoint that
 * has it, and savepoints here nest strictly (each is released or rolled back before its caller goes
 * on), so a nested one never meets another's. A name per savepoint made each SAVEPOINT and RELEASE a
 * new SQL text, which SQLite prepared anew and which pushed the hot statements out of the cache.
 */
const name = sql.id('isolated');

/**
 * Runs `work` in a savepoint of the open transaction: on failure its writes are undone and the
 * error goes on, while the transaction stays usable. SQLite and PostgreSQL spell it alike.
 */
export async function withSavepoint<T>(db: Kysely<object>, work: () => Promise<T>): Promise<T> {
  await sql`SAVEPOINT ${name}`.execute(db);
  try {
    const result = await work();
    await sql`RELEASE SAVEPOINT ${name}`.execute(db);
    return result;
  } catch (error) {
    try {
      await sql`ROLLBACK TO SAVEPOINT ${name}`.execute(db);
      await sql`RELEASE SAVEPOINT ${name}`.execute(db);
    } catch (rollbackError) {
      // The transaction itself is gone (SQLite rolls it back on a full disk or an I/O error): the
      // caller must not go on in it. A storage fault stays one, so it is retried as such.
      if (isStorageFault(error)) throw error;
      throw new TransactionAborted(error, rollbackError);
    }
    throw error;
  }
}

/** A savepoint could not be rolled back: the transaction it was in can only fail as a whole. */
export class TransactionAborted extends Error {
  constructor(cause: unknown, rollbackError: unknown) {
    super(`the transaction was aborted: ${messageOf(rollbackError)} (after: ${messageOf(cause)})`, { cause });
    this.name = 'TransactionAborted';
  }
}

/**
 * Whether an error out of a savepoint leaves nothing to go on with: a storage fault is no caller's
 * doing and the transaction is retried whole; an aborted one cannot go on at all.
 */
export const failsTheTransaction = (error: unknown) => isStorageFault(error) || error instanceof TransactionAborted;

/** Runs `work`; if it throws, whatever it added to each of `noted` is taken out again (it was rolled back). */
export async function forgottenOnFailure<T>(noted: ReadonlyArray<unknown[]>, work: () => Promise<T>): Promise<T> {
  const marks = noted.map((list) => list.length);
  try {
    return await work();
  } catch (error) {
    noted.forEach((list, i) => (list.length = marks[i] ?? 0));
    throw error;
  }
}

/**
 * Runs what a transaction asked to run once it committed. A callback only updates memory (a cache,
 * a counter): one that throws must not turn a committed transaction into a failed call.
 */
export function runCommitted(callbacks: ReadonlyArray<() => void>): void {
  for (const callback of callbacks) {
    try {
      callback();
    } catch {
      // Committed either way; the callback's owner keeps its own errors.
    }
  }
}
