import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { ValidationError } from '../../../shared/errors.js';
import { testDatabases } from '../../../shared/sql/test-databases.js';
import { routingMigrations } from './migrations.js';
import { sqlDestinationTables } from './sql-destination-tables.js';

const [, postgres] = testDatabases([routingMigrations]);

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const row = (id: string) => ({ delivery_id: id, event_id: 'e', app_id: 'shop', event_type: 't', body: '{}', delivered_at: 'now' });

describe.each(testDatabases([routingMigrations]))('database destination tables on $name', ({ open, skip }) => {
  const opened = async () => {
    const database = await open();
    closers.push(() => database.close());
    return { db: database.db, tables: sqlDestinationTables(() => new Date()) };
  };

  it.skipIf(skip)('never takes a table Intake did not create for a destination, in any letter case', async () => {
    const { db, tables } = await opened();
    await expect(tables(db).assertUsable('routing_rules')).rejects.toThrow(ValidationError);
    await expect(tables(db).assertUsable('ROUTING_RULES')).rejects.toThrow(ValidationError);
  });

  it.skipIf(skip)('creates a new table on first use, and uses it again', async () => {
    const { db, tables } = await opened();
    await tables(db).insertMany('big_orders', [row('d1')]);
    await tables(db).insertMany('big_orders', [row('d2'), row('d1')]);
    await expect(tables(db).assertUsable('big_orders')).resolves.toBeUndefined();
    const { rows } = await sql<{ n: number }>`SELECT count(*) AS n FROM big_orders`.execute(db);
    expect(Number(rows[0]?.n)).toBe(2);
  });

  it.skipIf(skip)('takes names that differ only in letter case for one table, spelled as it was first created', async () => {
    const { db, tables } = await opened();
    await tables(db).insertMany('CaseTbl', [row('d1')]);
    await expect(tables(db).assertUsable('casetbl')).resolves.toBeUndefined();
    await tables(db).insertMany('casetbl', [row('d2')]);
    // Another process, which has seen none of it, finds the same table.
    await sqlDestinationTables(() => new Date())(db).insert('CASETBL', row('d3'));
    const { rows } = await sql<{ n: number }>`SELECT count(*) AS n FROM ${sql.table('CaseTbl')}`.execute(db);
    expect(Number(rows[0]?.n)).toBe(3);
    const registered = await sql<{ table_name: string }>`SELECT table_name FROM routing_destination_tables`.execute(db);
    expect(registered.rows.map((r) => r.table_name)).toEqual(['CaseTbl']);
  });

  it.skipIf(skip)('refuses, in any letter case, a name whose table it did not create, and writes nothing there', async () => {
    const { db, tables } = await opened();
    await sql`CREATE TABLE ${sql.table('Audit')} (id text)`.execute(db);
    for (const name of ['Audit', 'audit', 'AUDIT']) {
      await expect(tables(db).assertUsable(name)).rejects.toThrow(ValidationError);
      await expect(tables(db).insertMany(name, [row('d1')])).rejects.toThrow(/already exists, in this or another letter case/);
    }
  });
});

describe.skipIf(postgres.skip)('database destination tables on PostgreSQL, beside other schemas', () => {
  it("does not count another schema's table of the same name: another role or deployment may have one", async () => {
    const ours = await postgres.open();
    closers.push(() => ours.close());
    const theirs = await postgres.open();
    closers.push(() => theirs.close());
    await sql`CREATE TABLE big_orders (id text)`.execute(theirs.db);
    const tables = sqlDestinationTables(() => new Date());
    await tables(ours.db).insertMany('big_orders', [row('d1')]);
    const { rows } = await sql<{ n: number }>`SELECT count(*) AS n FROM big_orders`.execute(ours.db);
    expect(Number(rows[0]?.n)).toBe(1);
    // In its own schema an unowned table still refuses the name.
    await sql`CREATE TABLE audit_log (id text)`.execute(ours.db);
    await expect(tables(ours.db).assertUsable('audit_log')).rejects.toThrow(ValidationError);
  });
});

describe.skipIf(postgres.skip)('database destination tables on PostgreSQL, created at once', () => {
  it('makes one table of two names differing in letter case that two transactions create at the same time', async () => {
    const database = await postgres.open();
    closers.push(() => database.close());
    const first = sqlDestinationTables(() => new Date());
    const second = sqlDestinationTables(() => new Date()); // another process: nothing seen yet
    let secondDone: Promise<void> | undefined;
    await database.db.transaction().execute(async (trx) => {
      await first(trx).insertMany('CaseTbl', [row('d1')]);
      secondDone = database.db.transaction().execute((other) => second(other).insertMany('casetbl', [row('d2')]));
      // The second transaction gets as far as it can while the first one still holds its table uncommitted.
      await new Promise((resolve) => setTimeout(resolve, 300));
    });
    await secondDone;
    const registered = await sql<{ table_name: string }>`SELECT table_name FROM routing_destination_tables`.execute(database.db);
    expect(registered.rows.map((r) => r.table_name)).toEqual(['CaseTbl']);
    const { rows } = await sql<{ n: number }>`SELECT count(*) AS n FROM ${sql.table('CaseTbl')}`.execute(database.db);
    expect(Number(rows[0]?.n)).toBe(2);
  });
});
