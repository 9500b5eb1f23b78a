import { sql, type Kysely } from 'kysely';
import type { JsonValue } from '../../../shared/events.js';
import type { ProfileLedger, ProfileViews } from '../../application/profile-store.js';
import { keyPieces, rowPieces } from '../../../shared/sql/statement-shapes.js';

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
type TraitRow = Tables['analytics_profile_traits'];
type LinkRow = Tables['analytics_profile_ids'];
type GroupRow = Tables['analytics_profile_groups'];

/** The profiles view as its subscriber writes it: upserts only, so a fact applied twice changes nothing. */
export function sqlProfileLedger(db: Kysely<object>): ProfileLedger {
  const t = tables(db);
  return {
    async record(appId, facts) {
      const traits = new Map<string, TraitRow>();
      const links = new Map<string, LinkRow>();
      const memberships = new Map<string, GroupRow>();
      // One row a key: a statement may not reach a row twice, so the batch's own settings are settled first.
      for (const fact of facts) {
        switch (fact.kind) {
          case 'trait': {
            const key = JSON.stringify([fact.subject.type, fact.subject.id, fact.trait]);
            const known = traits.get(key);
            if (known && !(fact.setAt > known.set_at || (fact.setAt === known.set_at && fact.itemId > known.item_id))) break;
            traits.set(key, {
              app_id: appId,
              subject_type: fact.subject.type,
              subject_id: fact.subject.id,
              trait: fact.trait,
              value: JSON.stringify(fact.value),
              set_at: fact.setAt,
              item_id: fact.itemId,
            });
            break;
          }
          case 'linked-id':
            links.set(JSON.stringify([fact.userId, fact.otherId, fact.link]), {
              app_id: appId,
              user_id: fact.userId,
              other_id: fact.otherId,
              link: fact.link,
            });
            break;
          case 'membership': {
            const key = JSON.stringify([fact.userId, fact.groupId]);
            const known = memberships.get(key);
            if (!known || fact.since < known.since)
              memberships.set(key, { app_id: appId, user_id: fact.userId, group_id: fact.groupId, since: fact.since });
            break;
          }
        }
      }
      for (const piece of rowPieces(db, [...traits.values()])) {
        await t
          .insertInto('analytics_profile_traits')
          .values(piece)
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
      }
      for (const piece of rowPieces(db, [...links.values()])) {
        await t
          .insertInto('analytics_profile_ids')
          .values(piece)
          .onConflict((oc) => oc.doNothing())
          .execute();
      }
      for (const piece of rowPieces(db, [...memberships.values()])) {
        await t
          .insertInto('analytics_profile_groups')
          .values(piece)
          .onConflict((oc) =>
            oc
              .columns(['app_id', 'user_id', 'group_id'])
              .doUpdateSet((eb) => ({ since: eb.ref('excluded.since') }))
              .where(sql<boolean>`excluded.since < analytics_profile_groups.since`),
          )
          .execute();
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
    async traitSizes(appId, type, ids, after, limit) {
      if (ids.length === 0) return [];
      // The identities fit one `in` list: the profile reads at most MAX_PROFILE_IDS of each link.
      const [piece = []] = keyPieces(db, ids);
      let query = t
        .selectFrom('analytics_profile_traits')
        .select(['subject_id', 'trait', 'set_at', 'item_id', sql<number | string>`octet_length(value)`.as('bytes')])
        .where('app_id', '=', appId)
        .where('subject_type', '=', type)
        .where('subject_id', 'in', piece)
        .orderBy('trait')
        .orderBy('subject_id')
        .limit(limit);
      if (after !== undefined) query = query.where('trait', '>', after);
      const rows = await query.execute();
      return rows.map((row) => ({
        subject: row.subject_id,
        trait: row.trait,
        setAt: row.set_at,
        itemId: row.item_id,
        bytes: Number(row.bytes),
      }));
    },
    async traitValues(appId, type, settings) {
      const values = [];
      for (const piece of rowPieces(db, settings)) {
        const rows = await t
          .selectFrom('analytics_profile_traits')
          .select(['subject_id', 'trait', 'value'])
          .where('app_id', '=', appId)
          .where('subject_type', '=', type)
          .where((eb) =>
            eb(
              eb.refTuple('subject_id', 'trait'),
              'in',
              piece.map((s) => eb.tuple(s.subject, s.trait)),
            ),
          )
          .execute();
        values.push(...rows.map((row) => ({ subject: row.subject_id, trait: row.trait, value: JSON.parse(row.value) as JsonValue })));
      }
      return values;
    },
    async linkedIds(appId, userIds, link, limit) {
      if (userIds.length === 0) return [];
      const [piece = []] = keyPieces(db, userIds);
      const rows = await t
        .selectFrom('analytics_profile_ids')
        .select(['other_id', sql<number | string>`octet_length(other_id)`.as('bytes')])
        .distinct()
        .where('app_id', '=', appId)
        .where('user_id', 'in', piece)
        .where('link', '=', link)
        .orderBy('other_id')
        .limit(limit)
        .execute();
      return rows.map((row) => ({ otherId: row.other_id, bytes: Number(row.bytes) }));
    },
    async groups(appId, userIds, limit) {
      if (userIds.length === 0) return [];
      const [piece = []] = keyPieces(db, userIds);
      const rows = await t
        .selectFrom('analytics_profile_groups')
        .select((eb) => ['group_id', eb.fn.min<string>('since').as('since')])
        .where('app_id', '=', appId)
        .where('user_id', 'in', piece)
        .groupBy('group_id')
        .orderBy('group_id')
        .limit(limit)
        .execute();
      return rows.map((row) => ({ groupId: row.group_id, since: row.since }));
    },
  };
}
