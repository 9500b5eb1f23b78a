import { SqliteAdapter, type Kysely } from 'kysely';

/**
 * Multi-row statements and `in` lists cut to a few fixed sizes.
 *
 * Every distinct SQL text is a statement SQLite prepares on its own, and a batch of 37 rows is another
 * text than one of 38. With batches of every size, the subscribers made SQLite prepare several hundred
 * statements a second under load, more than its connection's statement cache holds. Here a batch
 * below `WHOLE_BELOW` rows stays one statement (the common case under load, and one statement is
 * cheaper than two), and larger ones are cut into power-of-two pieces: a statement keeps about forty
 * texts, which stay prepared. PostgreSQL parses every query Kysely sends anyway, so there a batch
 * stays one statement, bounded only by the maximum.
 */
export const MAX_ROWS = 512;
const WHOLE_BELOW = 32;

export const onSqlite = (db: Kysely<object>) => db.getExecutor().adapter instanceof SqliteAdapter;

/**
 * Rows in pieces of at most `maxRows` (a power of two: wide rows take a lower one, to stay within the
 * bound-parameter limits); on SQLite, larger batches go in power-of-two pieces (100 rows: 64, 32, 4).
 */
export function* rowPieces<T>(db: Kysely<object>, rows: readonly T[], maxRows = MAX_ROWS): Generator<T[]> {
  const fixed = onSqlite(db);
  for (let at = 0; at < rows.length;) {
    const left = Math.min(rows.length - at, maxRows);
    const size = fixed && left >= WHOLE_BELOW ? 2 ** Math.floor(Math.log2(left)) : left;
    yield rows.slice(at, at + size);
    at += size;
  }
}

/**
 * Keys for an `in` list, in pieces of at most `MAX_ROWS`; on SQLite, each piece is padded to a power
 * of two by repeating its last key, which changes no `in` result and spares the extra statements.
 */
export function* keyPieces<T>(db: Kysely<object>, keys: readonly T[]): Generator<T[]> {
  const fixed = onSqlite(db);
  for (let at = 0; at < keys.length; at += MAX_ROWS) {
    const piece = keys.slice(at, at + MAX_ROWS);
    const last = piece[piece.length - 1] as T;
    if (fixed) for (let size = 2 ** Math.ceil(Math.log2(piece.length)); piece.length < size;) piece.push(last);
    yield piece;
  }
}
