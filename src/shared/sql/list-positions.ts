import { sql, type Kysely } from 'kysely';
import { onSqlite } from './statement-shapes.js';
import { decodeCursor, decodeKeyParts, encodeCursor } from '../pagination.js';
import { ValidationError } from '../errors.js';

/** The tables whose lists follow the order their rows were written, each with its sequence on PostgreSQL. */
export type ListedTable = 'query_items' | 'ingest_items';

/**
 * Positions in the list order for `count` rows about to be written, in the order they will be written
 * (decision 0043). SQLite has one writer: the positions after the table's highest follow the commit
 * order exactly. PostgreSQL takes them from the table's sequence, so concurrent transactions never
 * share one; they follow the order the rows were written, which transactions committing moments apart
 * may not keep.
 */
export async function listPositions(db: Kysely<object>, table: ListedTable, count: number): Promise<number[]> {
  if (count === 0) return [];
  if (onSqlite(db)) {
    const { rows } = await sql<{ highest: number | null }>`SELECT max(seq) AS highest FROM ${sql.table(table)}`.execute(db);
    const first = (rows[0]?.highest ?? 0) + 1;
    return Array.from({ length: count }, (_, i) => first + i);
  }
  const { rows } = await sql<{
    n: string;
  }>`SELECT nextval(${`${table}_list_seq`}::regclass) AS n FROM generate_series(1, ${count})`.execute(db);
  return rows.map((row) => Number(row.n)).sort((a, b) => a - b);
}

/**
 * The migration that gives a table its list order: a `seq` column, numbered for the rows already there
 * in the order of their ids (the order their lists had), unique, and the sequence on PostgreSQL; each
 * of `indexes` (name → leading columns) is made again to end with `seq` instead of the id.
 */
export async function addListPositions(
  db: Kysely<unknown>,
  table: ListedTable,
  indexes: ReadonlyArray<readonly [string, readonly string[]]>,
): Promise<void> {
  const postgres = !onSqlite(db as Kysely<object>);
  await db.schema
    .alterTable(table)
    .addColumn('seq', postgres ? 'bigint' : 'integer')
    .execute();
  await sql`UPDATE ${sql.table(table)} SET seq = ranked.n
    FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n FROM ${sql.table(table)}) AS ranked
    WHERE ranked.id = ${sql.table(table)}.id`.execute(db);
  await db.schema.createIndex(`${table}_seq`).unique().on(table).column('seq').execute();
  for (const [index, columns] of indexes) {
    await db.schema.dropIndex(index).execute();
    await db.schema
      .createIndex(index)
      .on(table)
      .columns([...columns, 'seq'])
      .execute();
  }
  if (postgres) {
    await sql`CREATE SEQUENCE ${sql.id(`${table}_list_seq`)}`.execute(db);
    await sql`SELECT setval(${`${table}_list_seq`}::regclass, coalesce(max(seq), 0) + 1, false) FROM ${sql.table(table)}`.execute(db);
  }
}

/** The cursor of a page that ends at `position`. */
export const cursorAfter = (position: number | string): string => encodeCursor(JSON.stringify([Number(position)]));

/**
 * The list position a cursor says the next page starts after. A cursor made of an item's id (a reader
 * that goes on from the last item it has, or a cursor of an earlier release, when lists followed ids)
 * starts after that item; an id the table does not hold is refused as any unknown cursor.
 */
export async function positionOfCursor(db: Kysely<object>, table: ListedTable, cursor: string): Promise<number> {
  try {
    const [position] = decodeKeyParts(cursor, ['integer'] as const);
    return position;
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const { rows } = await sql<{
      seq: number | string | null;
    }>`SELECT seq FROM ${sql.table(table)} WHERE id = ${decodeCursor(cursor)}`.execute(db);
    const seq = rows[0]?.seq;
    if (seq === undefined || seq === null) throw error;
    return Number(seq);
  }
}
