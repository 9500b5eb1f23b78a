import type { Kysely } from 'kysely';
import { expect, it } from 'vitest';
import { cachedRules } from './cached-rules.js';
import type { RuleCatalog, StoredRule } from './ports.js';

it('reads a rule once, until a rule event forgets it', async () => {
  const reads: string[] = [];
  let active = true;
  const table: RuleCatalog = {
    async get(ruleId) {
      reads.push(ruleId);
      return { rule_id: ruleId, is_active: active } as StoredRule;
    },
    listByApp: async () => [],
    pageByApp: async () => ({ items: [], nextCursor: null }),
    listAll: async () => ({ items: [], nextCursor: null }),
    countByApp: async () => 0,
  };
  const rules = cachedRules(() => table);
  const db = {} as Kysely<object>;
  expect((await rules.catalog(db).get('r1'))?.is_active).toBe(true);
  active = false;
  expect((await rules.catalog(db).get('r1'))?.is_active).toBe(true);
  expect(reads).toEqual(['r1']);
  rules.invalidate('r1');
  expect((await rules.catalog(db).get('r1'))?.is_active).toBe(false);
  expect(reads).toEqual(['r1', 'r1']);
});

it('reads a rule again once it is older than maxAgeMs, where replicas share the rule events', async () => {
  let active = true;
  const table: RuleCatalog = {
    get: async (ruleId) => ({ rule_id: ruleId, is_active: active }) as StoredRule,
    listByApp: async () => [],
    pageByApp: async () => ({ items: [], nextCursor: null }),
    listAll: async () => ({ items: [], nextCursor: null }),
    countByApp: async () => 0,
  };
  let clock = 0;
  const rules = cachedRules(() => table, { maxAgeMs: 500, now: () => clock });
  const db = {} as Kysely<object>;
  expect((await rules.catalog(db).get('r1'))?.is_active).toBe(true);
  active = false;
  clock = 500;
  expect((await rules.catalog(db).get('r1'))?.is_active).toBe(true);
  clock = 501;
  expect((await rules.catalog(db).get('r1'))?.is_active).toBe(false);
});

it('keeps the latest 10,000 rules read: one read before those is read again', async () => {
  const reads: string[] = [];
  const table = {
    async get(ruleId: string) {
      reads.push(ruleId);
      return undefined;
    },
  } as unknown as RuleCatalog;
  const rules = cachedRules(() => table);
  const db = {} as Kysely<object>;
  for (let n = 0; n <= 10_000; n++) await rules.catalog(db).get(`deleted-${n}`);
  await rules.catalog(db).get('deleted-10000');
  await rules.catalog(db).get('deleted-0');
  expect(reads.slice(10_001)).toEqual(['deleted-0']);
});
