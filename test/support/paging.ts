import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { expect } from 'vitest';
import { testPostgresUrl } from '../../src/shared/postgres/temporary-schema.js';
import { auth, startTestIntake, type TestIntake } from './embedded-intake.js';

export type Backend = 'SQLite' | 'PostgreSQL';

/** SQLite always; PostgreSQL too when TEST_POSTGRES_URL is set. */
export const backends: readonly Backend[] = testPostgresUrl ? ['SQLite', 'PostgreSQL'] : ['SQLite'];

/** An embedded Intake on the backend; on PostgreSQL, in a schema of its own that dispose() drops. */
export async function startIntakeOn(backend: Backend, env: Record<string, string> = {}): Promise<TestIntake> {
  if (backend === 'SQLite' || !testPostgresUrl) return startTestIntake(env);
  const url = testPostgresUrl;
  const prefix = `t${randomBytes(5).toString('hex')}_`;
  const intake = await startTestIntake({ ...env, DATABASE_URL: url, DB_SCHEMA_PREFIX: prefix });
  return {
    ...intake,
    async dispose() {
      await intake.dispose();
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${prefix}intake" CASCADE`);
      } finally {
        await client.end();
      }
    },
  };
}

/**
 * Follows next_cursor from the first page of `url` (which carries no cursor) to the last, checking
 * that every page but the last is full; answers every item in the order the pages gave them.
 */
export async function everyPage<T>(intake: TestIntake, url: string, limit: number): Promise<{ items: T[]; pages: number }> {
  const items: T[] = [];
  let pages = 0;
  let cursor: string | null = null;
  do {
    const separator = url.includes('?') ? '&' : '?';
    const pageUrl: string = `${url}${separator}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const response = await intake.app.inject({ method: 'GET', url: pageUrl, headers: auth });
    expect(response.statusCode, response.body).toBe(200);
    const page = response.json() as { items: T[]; next_cursor: string | null };
    if (page.next_cursor !== null) expect(page.items).toHaveLength(limit);
    items.push(...page.items);
    cursor = page.next_cursor;
    pages++;
  } while (cursor);
  return { items, pages };
}

/** Cursors no list gives: not base64url, empty. */
export const MALFORMED_CURSORS = ['not-a-cursor!', ''];
/** ...and, for a key of several parts, base64url of something else: too few parts, parts of the wrong type, no JSON. */
export const FORGED_KEY_CURSORS = [
  ...MALFORMED_CURSORS,
  ...['["x"]', '[1,2,3]', '{}', 'x'].map((key) => Buffer.from(key).toString('base64url')),
];

/** Each cursor is refused with the same 400 problem as any other list's. */
export async function expectCursorRefused(intake: TestIntake, url: string, cursors = FORGED_KEY_CURSORS): Promise<void> {
  const separator = url.includes('?') ? '&' : '?';
  for (const cursor of cursors) {
    const response = await intake.app.inject({ method: 'GET', url: `${url}${separator}cursor=${cursor}`, headers: auth });
    expect(response.statusCode, `${cursor}: ${response.body}`).toBe(400);
    expect(response.json()).toMatchObject({ status: 400, code: 'pagination.invalid-cursor' });
  }
}
