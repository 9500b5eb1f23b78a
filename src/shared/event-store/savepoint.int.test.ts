import { sql } from 'kysely';
import { afterEach, expect, it, vi } from 'vitest';
import { openSqlite } from '../sqlite/open-sqlite.js';
import { TransactionAborted, withSavepoint } from './savepoint.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

function database() {
  const sqlite = openSqlite(':memory:');
  closers.push(() => sqlite.close());
  return sqlite;
}

it('undoes what failed inside the savepoint and keeps the rest of the transaction', async () => {
  const { db, raw } = database();
  raw.exec('CREATE TABLE t (n INTEGER)');
  await db.transaction().execute(async (trx) => {
    await sql`INSERT INTO t VALUES (1)`.execute(trx);
    await expect(
      withSavepoint(trx, async () => {
        await sql`INSERT INTO t VALUES (2)`.execute(trx);
        throw new Error('this part fails');
      }),
    ).rejects.toThrow('this part fails');
    await sql`INSERT INTO t VALUES (3)`.execute(trx);
  });
  expect(raw.prepare('SELECT n FROM t ORDER BY n').pluck().all()).toEqual([1, 3]);
});

it('says the transaction is aborted when the savepoint is gone with it, so no one goes on in it', async () => {
  const { db, raw } = database();
  raw.exec('CREATE TABLE t (n INTEGER)');
  const failure = await db
    .transaction()
    .execute(async (trx) =>
      withSavepoint(trx, async () => {
        await sql`INSERT INTO t VALUES (1)`.execute(trx);
        // What SQLite does by itself on a full disk or an I/O error.
        await sql`ROLLBACK`.execute(trx);
        throw new Error('the write failed');
      }),
    )
    .catch((error: unknown) => error);
  expect(failure).toBeInstanceOf(TransactionAborted);
  expect((failure as Error).message).toMatch(/the write failed/);
  expect(raw.prepare('SELECT count(*) FROM t').pluck().get()).toBe(0);
});

it('nests: an inner savepoint that fails undoes only its own writes, an outer one that fails undoes both', async () => {
  const { db, raw } = database();
  raw.exec('CREATE TABLE t (n INTEGER)');
  await db.transaction().execute(async (trx) => {
    await withSavepoint(trx, async () => {
      await sql`INSERT INTO t VALUES (1)`.execute(trx);
      await expect(
        withSavepoint(trx, async () => {
          await sql`INSERT INTO t VALUES (2)`.execute(trx);
          throw new Error('inner fails');
        }),
      ).rejects.toThrow('inner fails');
      await withSavepoint(trx, () => sql`INSERT INTO t VALUES (3)`.execute(trx));
    });
    await expect(
      withSavepoint(trx, async () => {
        await withSavepoint(trx, () => sql`INSERT INTO t VALUES (4)`.execute(trx));
        throw new Error('outer fails');
      }),
    ).rejects.toThrow('outer fails');
  });
  expect(raw.prepare('SELECT n FROM t ORDER BY n').pluck().all()).toEqual([1, 3]);
});

it('is the same SQL every time, so SQLite prepares its statements once and keeps them', async () => {
  const { db, raw } = database();
  raw.exec('CREATE TABLE t (n INTEGER)');
  const prepare = vi.spyOn(raw, 'prepare');
  await db.transaction().execute(async (trx) => {
    for (let n = 0; n < 20; n++) await withSavepoint(trx, () => sql`INSERT INTO t VALUES (${n})`.execute(trx));
  });
  const texts = prepare.mock.calls.map(([text]) => text);
  // BEGIN, SAVEPOINT, the insert, RELEASE and COMMIT: each prepared once, not once per savepoint.
  expect(texts.filter((text) => /savepoint/i.test(text))).toHaveLength(2);
  expect(new Set(texts).size).toBe(texts.length);
});
