import { CompiledQuery, type Compilable, type Kysely } from 'kysely';

/**
 * A multi-row INSERT that Kysely builds once per dialect and row count, then runs again with each
 * batch's values.
 *
 * Kysely turns every value of every row into a node of a new query tree and compiles that tree for
 * each statement; on the subscribers' hot inserts that took 7 % of the storage thread. The text only
 * depends on the number of rows (shared/sql/statement-shapes.ts keeps those few), so it is kept, and
 * a batch only lays out its values.
 *
 * A text is kept only once a probe shows that the query's parameters are exactly the rows' values
 * for `columns`, row by row, in that order: a builder that adds parameters of its own, or names other
 * columns, is always built by Kysely, as is a batch with an undefined value (which Kysely leaves out).
 * The text is shared by every database of a dialect, so `build` must not name a database's schema
 * (PostgreSQL's roles find their schema through the connection's search_path).
 */
export function insertTemplate<Row extends object, Result = unknown>(
  columns: ReadonlyArray<keyof Row & string>,
  build: (db: Kysely<object>, rows: Row[]) => Compilable<Result>,
): (db: Kysely<object>, rows: Row[]) => Promise<Result[]> {
  // `false`: this row count's query does not lay out as the rows do, so Kysely builds each one.
  const texts = new Map<string, string | false>();

  const layout = (rows: readonly Row[]): unknown[] | undefined => {
    const parameters: unknown[] = [];
    for (const row of rows) {
      for (const column of columns) {
        const value = row[column];
        if (value === undefined) return undefined;
        parameters.push(value);
      }
    }
    return parameters;
  };

  const learn = (db: Kysely<object>, count: number): string | false => {
    const probe = Array.from(
      { length: count },
      (_, i) => Object.fromEntries(columns.map((column) => [column, `\u0000${i}:${column}`])) as Row,
    );
    const compiled = build(db, probe).compile();
    const expected = layout(probe) ?? [];
    const fits = compiled.parameters.length === expected.length && compiled.parameters.every((value, i) => value === expected[i]);
    return fits ? compiled.sql : false;
  };

  return async (db, rows) => {
    if (rows.length === 0) return [];
    const key = `${db.getExecutor().adapter.constructor.name}:${rows.length}`;
    let text = texts.get(key);
    if (text === undefined) texts.set(key, (text = learn(db, rows.length)));
    const parameters = text === false ? undefined : layout(rows);
    if (text === false || parameters === undefined) return (await db.executeQuery(build(db, rows))).rows;
    return (await db.executeQuery<Result>(CompiledQuery.raw(text, parameters))).rows;
  };
}
