import { sql, type Kysely } from 'kysely';
import { onSqlite } from './statement-shapes.js';

/** Who locks: each reader-and-writer of its own rows has its own space of keys, so they never wait on each other. */
export const KEY_LOCK_SPACES = { itemViews: 1, itemTallies: 2 } as const;

/**
 * Holds `keys` until the transaction ends, for a subscriber that reads rows, changes them in memory and
 * writes them back (an item's view, its tally). Replicas of a role share one durable consumer, so two
 * of them can fold events of the same item at once, and the one that wrote last would undo the other.
 * On PostgreSQL each key takes a transaction-scoped advisory lock, all in one order of their hashes
 * so that no two transactions each wait for the other; a key not yet in a table locks as well as one
 * that is. SQLite has a single writer: there is nothing to do.
 */
export async function lockKeys(db: Kysely<object>, space: number, keys: readonly string[]): Promise<void> {
  if (keys.length === 0 || onSqlite(db)) return;
  await sql`SELECT pg_advisory_xact_lock(${space}::int, ordered.k)
    FROM (SELECT DISTINCT hashtext(key) AS k FROM unnest(${[...keys]}::text[]) AS key ORDER BY 1) AS ordered`.execute(db);
}
