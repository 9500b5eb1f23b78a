import { isMissingSchema } from '../../../shared/event-store/storage-fault.js';
import { PostgresAdapter, sql, type Kysely } from 'kysely';
import { ValidationError } from '../../../shared/errors.js';
import { rowPieces } from '../../../shared/sql/statement-shapes.js';
import type { DestinationRow, DestinationTables, DestinationTablesFor } from '../../application/ports.js';
import { insertTemplate } from '../../../shared/sql/insert-template.js';

type Tables = { routing_destination_tables: { table_name: string; created_at: string } };

const COLUMNS = ['delivery_id', 'event_id', 'app_id', 'event_type', 'body', 'delivered_at'] as const;

/**
 * A destination's multi-row insert, its text kept per row count: five matching rules write five rows
 * per item, and building each statement with Kysely cost as much as SQLite took to run it. The name
 * was validated as a plain identifier when the rule was saved, and Kysely quotes it.
 */
const rowsInto = (table: string) =>
  insertTemplate<DestinationRow>(COLUMNS, (db, rows) =>
    (db as Kysely<Record<string, DestinationRow>>)
      .insertInto(table)
      .values(rows)
      .onConflict((oc) => oc.column('delivery_id').doNothing()),
  );
const insertsByTable = new Map<string, ReturnType<typeof rowsInto>>();

/**
 * Tables of the `database` destination. A name is usable when Intake created it for this purpose,
 * or when nothing by that name exists yet: a rule can never write into one of Intake's own tables.
 *
 * Names are one table in any letter case, as SQLite takes them even quoted: rules naming `Orders` and
 * `orders` share the table the first of them created, as two rules naming `orders` do. PostgreSQL
 * would keep quoted `"Orders"` and `"orders"` apart, so there the name is resolved to the spelling
 * registered first, and the same rules write to the same table on both databases.
 */
export function sqlDestinationTables(now: () => Date): DestinationTablesFor {
  // The table each name a rule gives resolves to, once known to exist (committed), shared by every
  // transaction's view of the database.
  const created = new Map<string, string>();
  return (db, afterCommit) => destinationTables(db, now, created, afterCommit ?? ((remember) => remember()));
}

function destinationTables(
  db: Kysely<object>,
  now: () => Date,
  created: Map<string, string>,
  afterCommit: (callback: () => void) => void,
): DestinationTables {
  const registry = () => db.withTables<Tables>();

  /** The destination table registered under the name in any letter case: the very spelling first. */
  const registered = async (table: string) => {
    const rows = await registry()
      .selectFrom('routing_destination_tables')
      .select('table_name')
      .where((eb) => eb(eb.fn('lower', ['table_name']), '=', table.toLowerCase()))
      .orderBy('table_name')
      .execute();
    return rows.find((r) => r.table_name === table)?.table_name ?? rows[0]?.table_name;
  };

  /**
   * Whether the name is taken where the table would be created. On PostgreSQL that is the connection's
   * own schema: Kysely's introspection lists every schema's tables, so another role's or deployment's
   * table of that name would refuse the destination. A relation of any kind (a view, an index) takes the name.
   */
  const exists = async (table: string) => {
    // SQLite's tables, views, indexes and triggers share one namespace: an index of Intake's takes the name too.
    if (!(db.getExecutor().adapter instanceof PostgresAdapter)) {
      const { rows } = await sql<{ taken: number }>`SELECT 1 AS taken FROM sqlite_master WHERE lower(name) = lower(${table})`.execute(db);
      return rows.length > 0;
    }
    const { rows } = await sql<{ taken: number }>`SELECT 1 AS taken FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND lower(c.relname) = lower(${table})`.execute(db);
    return rows.length > 0;
  };

  /** The table a rule's name writes to: a destination table of that name in any case, or a new one. */
  const resolve = async (table: string) => {
    const known = created.get(table) ?? (await registered(table));
    if (known !== undefined) return known;
    if (await exists(table)) {
      throw new ValidationError(
        'routing.invalid-destination',
        `table ${table} already exists, in this or another letter case, and was not created by a database destination`,
        [{ path: 'destination_config.table', message: 'names an existing table Intake does not own' }],
      );
    }
    return table;
  };

  /**
   * On PostgreSQL, transactions creating a table by one name in any letter case take turns until the
   * first commits: each would otherwise see neither the other's table nor its registration, and
   * `Orders` and `orders` would become two tables (or one `CREATE TABLE` fail on the catalog's unique key).
   * SQLite has one writer at a time already.
   */
  const takeTurn = async (table: string) => {
    if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return;
    await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`intake.destination-table:${table.toLowerCase()}`}, 0))`.execute(db);
  };

  const ensure = async (table: string) => {
    const known = created.get(table);
    if (known !== undefined) return known;
    await takeTurn(table);
    const target = await resolve(table);
    await db.schema
      .createTable(target)
      .ifNotExists()
      .addColumn('delivery_id', 'text', (c) => c.primaryKey())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('app_id', 'text', (c) => c.notNull())
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('body', 'text', (c) => c.notNull())
      .addColumn('delivered_at', 'text', (c) => c.notNull())
      .execute();
    await registry()
      .insertInto('routing_destination_tables')
      .values({ table_name: target, created_at: now().toISOString() })
      .onConflict((oc) => oc.doNothing())
      .execute();
    afterCommit(() => created.set(table, target));
    return target;
  };

  /**
   * A destination table is the user's: one dropped or altered under a running Intake is no storage
   * fault (which would hold up every application's pipeline until a restart) but a table that cannot be
   * written, and it is made again on the next attempt, which the callers make once.
   */
  const writing = async (table: string, write: () => Promise<void>) => {
    try {
      await write();
    } catch (error) {
      if (!isMissingSchema(error)) throw error;
      created.delete(table);
      throw new Error(`${(error as Error).message} (the table was changed under Intake)`);
    }
  };

  return {
    async assertUsable(table) {
      await resolve(table);
    },
    async insert(table, row) {
      const target = await ensure(table);
      // The identifier was validated when the rule was saved and Kysely quotes it; values are parameters.
      await writing(table, async () => {
        await sql`INSERT INTO ${sql.table(target)} (delivery_id, event_id, app_id, event_type, body, delivered_at)
                  VALUES (${row.delivery_id}, ${row.event_id}, ${row.app_id}, ${row.event_type}, ${row.body}, ${row.delivered_at})
                  ON CONFLICT (delivery_id) DO NOTHING`.execute(db);
      });
    },
    async insertMany(table, rows) {
      if (rows.length === 0) return;
      const target = await ensure(table);
      // Six columns a row: a piece's 512 rows at most stay far below the bound-parameter limits of
      // SQLite and PostgreSQL.
      let insert = insertsByTable.get(target);
      if (!insert) insertsByTable.set(target, (insert = rowsInto(target)));
      const into = insert;
      await writing(table, async () => {
        for (const piece of rowPieces(db, rows)) await into(db, [...piece]);
      });
    },
  };
}
