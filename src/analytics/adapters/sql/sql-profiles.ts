import { sql, type Kysely } from 'kysely';
import type { JsonValue } from '../../../shared/events.js';
import type { ProfileLedger, ProfileViews } from '../../application/profile-store.js';
import { keyPieces } from '../../../shared/sql/statement-shapes.js';

type Tables = {
  analytics_profile_traits: {
    app_id: string;
    subject_type: string;
    subject_id: string;
    trait: string;
    value: string;
    set_at: string;
    item_id: string;
  };
  analytics_profile_ids: { app_id: string; user_id: string; other_id: string; link: string };
  analytics_profile_groups: { app_id: string; user_id: string; group_id: string; since: string };
};

const tables = (db: Kysely<object>) => db.withTables<Tables>();

/** The profiles view as its subscriber writes it: upserts only, so a fact applied twice changes nothing. */
export function sqlProfileLedger(db: Kysely<object>): ProfileLedger {
  const t = tables(db);
  return {
    async record(appId, fact) {
      switch (fact.kind) {
        case 'trait':
          await t
            .insertInto('analytics_profile_traits')
            .values({
              app_id: appId,
              subject_type: fact.subject.type,
              subject_id: fact.subject.id,
              trait: fact.trait,
              value: JSON.stringify(fact.value),
              set_at: fact.setAt,
              item_id: fact.itemId,
            })
            .onConflict((oc) =>
              oc
                .columns(['app_id', 'subject_type', 'subject_id', 'trait'])
                .doUpdateSet((eb) => ({
                  value: eb.ref('excluded.value'),
                  set_at: eb.ref('excluded.set_at'),
                  item_id: eb.ref('excluded.item_id'),
                }))
                // Only a later setting replaces the kept one: the order messages arrive in does not matter.
                .where(
                  sql<boolean>`(excluded.set_at > analytics_profile_traits.set_at OR (excluded.set_at = analytics_profile_traits.set_at AND excluded.item_id > analytics_profile_traits.item_id))`,
                ),
            )
            .execute();
          return;
        case 'linked-id':
          await t
            .insertInto('analytics_profile_ids')
            .values({ app_id: appId, user_id: fact.userId, other_id: fact.otherId, link: fact.link })
            .onConflict((oc) => oc.doNothing())
            .execute();
          return;
        case 'membership':
          await t
            .insertInto('analytics_profile_groups')
            .values({ app_id: appId, user_id: fact.userId, group_id: fact.groupId, since: fact.since })
            .onConflict((oc) =>
              oc
                .columns(['app_id', 'user_id', 'group_id'])
                .doUpdateSet((eb) => ({ since: eb.ref('excluded.since') }))
                .where(sql<boolean>`excluded.since < analytics_profile_groups.since`),
            )
            .execute();
          return;
      }
    },
    async clear() {
      await t.deleteFrom('analytics_profile_traits').execute();
      await t.deleteFrom('analytics_profile_ids').execute();
      await t.deleteFrom('analytics_profile_groups').execute();
    },
  };
}

export function sqlProfileViews(db: Kysely<object>): ProfileViews {
  const t = tables(db);
  return {
    async traits(appId, type, ids) {
      const rows = [];
      for (const piece of keyPieces(db, [...ids])) {
        rows.push(
          ...(await t
            .selectFrom('analytics_profile_traits')
            .selectAll()
            .where('app_id', '=', appId)
            .where('subject_type', '=', type)
            .where('subject_id', 'in', piece)
            .execute()),
        );
      }
      return rows.map((row) => ({
        subject: row.subject_id,
        trait: row.trait,
        value: JSON.parse(row.value) as JsonValue,
        setAt: row.set_at,
        itemId: row.item_id,
      }));
    },
    async linkedIds(appId, userId) {
      const rows = await t
        .selectFrom('analytics_profile_ids')
        .select(['other_id', 'link'])
        .where('app_id', '=', appId)
        .where('user_id', '=', userId)
        .orderBy('other_id')
        .execute();
      return rows.map((row) => ({ otherId: row.other_id, link: row.link === 'alias' ? 'alias' : 'anonymous' }));
    },
    async groups(appId, userIds) {
      const rows = await t
        .selectFrom('analytics_profile_groups')
        .select(['group_id', 'since'])
        .where('app_id', '=', appId)
        .where('user_id', 'in', [...userIds])
        .orderBy('group_id')
        .execute();
      return rows.map((row) => ({ groupId: row.group_id, since: row.since }));
    },
  };
}
