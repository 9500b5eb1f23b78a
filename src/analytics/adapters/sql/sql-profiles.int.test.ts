import type { JsonObject } from '../../../shared/events.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getProfile, PROFILE_LIMITS } from '../../application/get-profile.js';
import { profileFactsOf } from '../../domain/profile.js';
import { analyticsMigrations } from './migrations.js';
import { sqlProfileLedger, sqlProfileViews } from './sql-profiles.js';
import { sqlSourceSettings } from './sql-source-settings.js';
import { testDatabases, type TestDatabase } from '../../../shared/sql/test-databases.js';

type Database = TestDatabase;

const databases = testDatabases([analyticsMigrations]);

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
        for (const fact of profileFactsOf(id, payload)) await ledger.record('shop', [fact]);
      }
      const profile = await getProfile(sqlProfileViews(handle.db))('shop', 'u');
      expect(profile).toEqual({
        appId: 'shop',
        userId: 'u',
        traits: { age: 30, plan: 'pro' },
        anonymousIds: ['a1', 'a2'],
        previousIds: ['old'],
        groups: [{ groupId: 'acme', traits: { seats: 3 }, since: '2026-11-22T10:00:00.000Z', traitsTruncated: false }],
        truncated: [],
      });
      await ledger.clear();
      await expect(getProfile(sqlProfileViews(handle.db))('shop', 'u')).rejects.toThrow(
        /no traits, linked ids or groups known for user u of shop yet/,
      );
    });

    it(`keeps the latest setting of each trait across the user's ids, and gives the first ${PROFILE_LIMITS.traits} by name`, async () => {
      const ledger = sqlProfileLedger(handle.db);
      const traits = Array.from({ length: PROFILE_LIMITS.traits + 100 }, (_, i) => `t${String(i).padStart(5, '0')}`);
      const identify = (id: string, payload: JsonObject) => profileFactsOf(id, { type: 'identify', ...payload });
      // Every trait set on the user and on its anonymous id, the latest even ones on the anonymous id and the
      // latest odd ones on the user; the first also on an aliased id. Sizes are read 1,024 settings at a time
      // in order of trait then id: the 1,024th is the anonymous id's (older) setting of t00511.
      const all = (value: (i: number) => string | undefined): JsonObject =>
        Object.fromEntries(
          traits.flatMap((t, i) => {
            const v = value(i);
            return v === undefined ? [] : [[t, v]];
          }),
        );
      const facts = [
        ...identify('m0', { userId: 'p', timestamp: '2026-11-19T00:00:00.000Z', traits: { t00000: 'old' } }),
        ...profileFactsOf('m0a', { type: 'alias', userId: 'u', previousId: 'p' }),
        ...identify('m1', { userId: 'u', anonymousId: 'a', timestamp: '2026-11-20T00:00:00.000Z', traits: all(() => 'old') }),
        ...identify('m2', { anonymousId: 'a', timestamp: '2026-11-21T00:00:00.000Z', traits: all((i) => (i % 2 === 0 ? 'new' : 'old')) }),
        ...identify('m3', { userId: 'u', timestamp: '2026-11-22T00:00:00.000Z', traits: all((i) => (i % 2 === 1 ? 'new' : undefined)) }),
      ];
      // All at once: one statement settles each trait set several times in it (PostgreSQL refuses a row reached twice).
      await ledger.record('many', facts);
      const profile = await getProfile(sqlProfileViews(handle.db))('many', 'u');
      expect(profile.traits).toEqual(Object.fromEntries(traits.slice(0, PROFILE_LIMITS.traits).map((t) => [t, 'new'])));
      expect(profile.truncated).toEqual(['traits']);
      expect(profile.anonymousIds).toEqual(['a']);
      expect(profile.previousIds).toEqual(['p']);
    });

    it(`stops the traits at ${PROFILE_LIMITS.traitBytes} bytes of names and stored values`, async () => {
      const ledger = sqlProfileLedger(handle.db);
      const value = 'x'.repeat(32 * 1024 - 2);
      const names = Array.from({ length: 40 }, (_, i) => `big${String(i).padStart(2, '0')}`);
      for (const name of names) {
        for (const fact of profileFactsOf(name, { type: 'identify', userId: 'u', traits: { [name]: value } }))
          await ledger.record('heavy', [fact]);
      }
      const profile = await getProfile(sqlProfileViews(handle.db))('heavy', 'u');
      const each = Buffer.byteLength(names[0] ?? '') + JSON.stringify(value).length;
      expect(Object.keys(profile.traits)).toEqual(names.slice(0, Math.floor(PROFILE_LIMITS.traitBytes / each)));
      expect(profile.truncated).toEqual(['traits']);
    });

    it(`gives the first ${PROFILE_LIMITS.ids} ids of each link and ${PROFILE_LIMITS.groups} groups, and cuts a group's traits at ${PROFILE_LIMITS.groupTraitBytes} bytes`, async () => {
      const ledger = sqlProfileLedger(handle.db);
      const numbered = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(3, '0')}`);
      const record = async (facts: ReturnType<typeof profileFactsOf>) => {
        for (const fact of facts) await ledger.record('crowd', [fact]);
      };
      for (const id of numbered('anon-', PROFILE_LIMITS.ids + 1))
        await record(profileFactsOf(id, { type: 'identify', userId: 'u', anonymousId: id }));
      for (const id of numbered('old-', PROFILE_LIMITS.ids))
        await record(profileFactsOf(id, { type: 'alias', userId: 'u', previousId: id }));
      for (const id of numbered('g', PROFILE_LIMITS.groups + 1))
        await record(profileFactsOf(id, { type: 'group', userId: 'u', groupId: id, timestamp: '2026-11-20T00:00:00.000Z' }));
      const halfOfTheGroupBudget = 'y'.repeat(PROFILE_LIMITS.groupTraitBytes / 2);
      await record(
        profileFactsOf('gt', {
          type: 'group',
          userId: 'u',
          groupId: 'g000',
          traits: { a: halfOfTheGroupBudget, b: halfOfTheGroupBudget, c: 1 },
        }),
      );
      const profile = await getProfile(sqlProfileViews(handle.db))('crowd', 'u');
      expect(profile.anonymousIds).toEqual(numbered('anon-', PROFILE_LIMITS.ids));
      expect(profile.previousIds).toEqual(numbered('old-', PROFILE_LIMITS.ids));
      expect(profile.groups.map((g) => g.groupId)).toEqual(numbered('g', PROFILE_LIMITS.groups));
      expect(profile.groups[0]).toMatchObject({ traits: { a: halfOfTheGroupBudget }, traitsTruncated: true });
      expect(profile.groups[1]).toMatchObject({ traits: {}, traitsTruncated: false });
      expect(profile.truncated).toEqual(['anonymous_ids', 'groups']);
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
