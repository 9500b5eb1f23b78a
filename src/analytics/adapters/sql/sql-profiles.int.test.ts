import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import type { JsonObject } from '../../../shared/events.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migratePostgresToLatest } from '../../../shared/postgres/migrate.js';
import { openTemporarySchema, testPostgresUrl } from '../../../shared/postgres/temporary-schema.js';
import { migrateToLatest } from '../../../shared/sqlite/migrate.js';
import { openSqlite } from '../../../shared/sqlite/open-sqlite.js';
import { getProfile } from '../../application/get-profile.js';
import { profileFactsOf } from '../../domain/profile.js';
import { analyticsMigrations } from './migrations.js';
import { sqlProfileLedger, sqlProfileViews } from './sql-profiles.js';
import { sqlSourceSettings } from './sql-source-settings.js';

interface Database {
  readonly db: Kysely<object>;
  close(): Promise<void>;
}

const databases: Array<{ name: string; open: () => Promise<Database>; skip: boolean }> = [
  {
    name: 'SQLite',
    skip: false,
    open: async () => {
      const dir = mkdtempSync(join(tmpdir(), 'intake-profiles-'));
      const sqlite = openSqlite(join(dir, 'db.sqlite'));
      await migrateToLatest(sqlite.db, [analyticsMigrations]);
      return { db: sqlite.db, close: async () => (await sqlite.close(), rmSync(dir, { recursive: true, force: true })) };
    },
  },
  {
    name: 'PostgreSQL',
    skip: !testPostgresUrl,
    open: async () => {
      const postgres = await openTemporarySchema(testPostgresUrl ?? '');
      await migratePostgresToLatest(postgres, [analyticsMigrations]);
      return { db: postgres.db, close: () => postgres.close() };
    },
  },
];

const messages: Array<{ id: string; payload: JsonObject }> = [
  {
    id: 'i3',
    payload: { type: 'identify', userId: 'u', anonymousId: 'a2', traits: { plan: 'pro' }, timestamp: '2026-11-24T10:00:00.000Z' },
  },
  {
    id: 'i1',
    payload: { type: 'identify', userId: 'u', anonymousId: 'a1', traits: { plan: 'free', age: 30 }, timestamp: '2026-11-20T10:00:00.000Z' },
  },
  { id: 'i2', payload: { type: 'identify', userId: 'u', traits: { plan: 'team' }, timestamp: '2026-11-24T10:00:00.000Z' } },
  { id: 'g1', payload: { type: 'group', userId: 'u', groupId: 'acme', traits: { seats: 3 }, timestamp: '2026-11-22T10:00:00.000Z' } },
  { id: 'x1', payload: { type: 'alias', userId: 'u', previousId: 'old' } },
];

for (const database of databases) {
  describe.skipIf(database.skip)(`the profiles view on ${database.name}`, () => {
    let handle: Database;
    beforeAll(async () => {
      handle = await database.open();
    });
    afterAll(async () => handle?.close());

    it('ends in the same profile whatever the order and however often each fact is applied', async () => {
      const ledger = sqlProfileLedger(handle.db);
      // Every message twice, newest first: the tie at 10:00 on the 24th goes to the greater item id.
      for (const { id, payload } of [...messages, ...messages.slice().reverse()]) {
        for (const fact of profileFactsOf(id, payload)) await ledger.record('shop', fact);
      }
      const profile = await getProfile(sqlProfileViews(handle.db))('shop', 'u');
      expect(profile).toEqual({
        appId: 'shop',
        userId: 'u',
        traits: { age: 30, plan: 'pro' },
        anonymousIds: ['a1', 'a2'],
        previousIds: ['old'],
        groups: [{ groupId: 'acme', traits: { seats: 3 }, since: '2026-11-22T10:00:00.000Z' }],
      });
      await ledger.clear();
      await expect(getProfile(sqlProfileViews(handle.db))('shop', 'u')).rejects.toThrow(/no identify/);
    });

    it('keeps source settings', async () => {
      const sources = sqlSourceSettings(handle.db);
      await sources.put({ appId: 'shop', allowedOrigins: ['https://shop.example'] }, '2026-11-24T10:00:00.000Z');
      await sources.put({ appId: 'shop', allowedOrigins: null }, '2026-11-24T11:00:00.000Z');
      expect(await sources.get('shop')).toEqual({ appId: 'shop', allowedOrigins: null });
      expect(await sources.get('blog')).toBeUndefined();
    });
  });
}
