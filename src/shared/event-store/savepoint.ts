import { sql, type Kysely } from 'kysely';

let counter = 0;

/**
 * Runs `work` in a savepoint of the open transaction: on failure its writes are undone and the
 * error goes on, while the transaction stays usable. SQLite and PostgreSQL spell it alike.
 */
export async function withSavepoint<T>(db: Kysely<object>, work: () => Promise<T>): Promise<T> {
  const name = sql.id(`isolated_${++counter}`);
  await sql`SAVEPOINT ${name}`.execute(db);
  try {
    const result = await work();
    await sql`RELEASE SAVEPOINT ${name}`.execute(db);
    return result;
  } catch (error) {
    await sql`ROLLBACK TO SAVEPOINT ${name}`.execute(db);
    await sql`RELEASE SAVEPOINT ${name}`.execute(db);
    throw error;
  }
}

/** Runs `work`; if it throws, whatever it added to `noted` is taken out again (it was rolled back). */
export async function forgottenOnFailure<T>(noted: unknown[], work: () => Promise<T>): Promise<T> {
  const mark = noted.length;
  try {
    return await work();
  } catch (error) {
    noted.length = mark;
    throw error;
  }
}
