import { PostgresAdapter, sql, type ExpressionBuilder, type Kysely } from 'kysely';
import type { InlineProjection } from '../../../shared/event-store/event-store.js';
import { decodeCursor, decodeKeyParts, encodeCursor, MAX_PAGE_BYTES, rowsWithin, type Page } from '../../../shared/pagination.js';
import { keyPieces } from '../../../shared/sql/statement-shapes.js';
import type { RuleCatalog, SecretVault, StoredRule } from '../../application/ports.js';
import { RULE_EVENT_TYPES, type RoutingRuleEvent } from '../../domain/routing-rule.js';
import type { SecretBox } from '../secrets/secret-box.js';

type Tables = {
  routing_rules: { rule_id: string; app_id: string; rule: string; priority: number; created_at: string; is_active: number };
  routing_secrets: { rule_id: string; secret: string; previous_secret: string | null; previous_until: string | null };
  routing_sealed_values: { rule_id: string; reference: string; sealed: string };
  routing_tallies: { rule_id: string };
  routing_breakers: { rule_id: string };
};

const tables = (db: Kysely<object>) => db.withTables<Tables>();

/** Keeps routing_rules in step with the rule events, in their own transaction. */
export const rulesProjection: InlineProjection = {
  name: 'routing.rules',
  handles: RULE_EVENT_TYPES,
  async apply(db, events) {
    for (const event of events) {
      const { type, data } = event as unknown as RoutingRuleEvent;
      if (type === 'RoutingRuleCreated') {
        const rule: StoredRule = { ...data, updated_at: data.created_at };
        await tables(db)
          .insertInto('routing_rules')
          .values({
            rule_id: data.rule_id,
            app_id: data.app_id,
            rule: JSON.stringify(rule),
            priority: data.priority,
            created_at: data.created_at,
            is_active: data.is_active ? 1 : 0,
          })
          .onConflict((oc) => oc.doNothing())
          .execute();
      } else if (type === 'RoutingRuleDeleted') {
        await tables(db).deleteFrom('routing_rules').where('rule_id', '=', data.rule_id).execute();
        await tables(db).deleteFrom('routing_secrets').where('rule_id', '=', data.rule_id).execute();
        await tables(db).deleteFrom('routing_sealed_values').where('rule_id', '=', data.rule_id).execute();
        await tables(db).deleteFrom('routing_tallies').where('rule_id', '=', data.rule_id).execute();
        // Its circuit too: open, it held the deleted rule's backlog back, to be dead-lettered one probe at a time.
        await tables(db).deleteFrom('routing_breakers').where('rule_id', '=', data.rule_id).execute();
      } else if (type === 'RoutingRuleUpdated' || type === 'RoutingRuleToggled') {
        const row = await tables(db).selectFrom('routing_rules').select('rule').where('rule_id', '=', data.rule_id).executeTakeFirst();
        if (!row) continue;
        const current = JSON.parse(row.rule) as StoredRule;
        const next: StoredRule =
          type === 'RoutingRuleUpdated'
            ? { ...data, created_at: current.created_at, updated_at: data.updated_at }
            : { ...current, is_active: data.is_active, updated_at: data.toggled_at };
        await tables(db)
          .updateTable('routing_rules')
          .set({ rule: JSON.stringify(next), priority: next.priority, is_active: next.is_active ? 1 : 0 })
          .where('rule_id', '=', data.rule_id)
          .execute();
      }
    }
  },
};

// Rules saved before ordering keys existed have none.
const parseStored = (text: string): StoredRule => {
  const rule = JSON.parse(text) as StoredRule;
  return { ...rule, ordering_key: rule.ordering_key ?? null };
};

/** An application's rules in the order they run: highest priority first, then oldest, then by id. */
const byPriority = (db: Kysely<object>, appId: string) =>
  tables(db)
    .selectFrom('routing_rules')
    .select('rule')
    .where('app_id', '=', appId)
    .orderBy('priority', 'desc')
    .orderBy('created_at')
    .orderBy('rule_id');

const ruleBytes = sql<number | string>`octet_length(rule)`.as('bytes');
type SizedRule = { rule_id: string; priority: number; created_at: string; bytes: number | string };

/**
 * The rules of sized rows (`limit + 1` of them, in list order) up to `limit` and MAX_PAGE_BYTES of stored
 * rules: a rule's name and destination config are as long as a request body allows, and a thousand rules
 * of 1 MB made one answer of a gigabyte.
 */
async function pageWithin(
  db: Kysely<object>,
  sized: SizedRule[],
  limit: number,
  keyOf: (row: SizedRule) => string,
): Promise<Page<StoredRule>> {
  const taken = rowsWithin(sized, limit, MAX_PAGE_BYTES);
  const texts = new Map<string, string>();
  for (const piece of keyPieces(
    db,
    taken.map((row) => row.rule_id),
  )) {
    for (const row of await tables(db).selectFrom('routing_rules').select(['rule_id', 'rule']).where('rule_id', 'in', piece).execute()) {
      texts.set(row.rule_id, row.rule);
    }
  }
  const rules = taken.flatMap((row) => {
    const text = texts.get(row.rule_id);
    // A rule deleted between the two reads is left out.
    return text === undefined ? [] : [parseStored(text)];
  });
  const last = taken.at(-1);
  return { items: rules, nextCursor: sized.length > taken.length && last ? encodeCursor(keyOf(last)) : null };
}

/** The rules after the cursor's rule in that order (the key ends with the id, so no two rules tie). */
function afterRule(cursor: string) {
  const [priority, createdAt, ruleId] = decodeKeyParts(cursor, ['integer', 'string', 'string']);
  return (eb: ExpressionBuilder<Tables, 'routing_rules'>) =>
    eb.or([
      eb('priority', '<', priority),
      eb.and([eb('priority', '=', priority), eb('created_at', '>', createdAt)]),
      eb.and([eb('priority', '=', priority), eb('created_at', '=', createdAt), eb('rule_id', '>', ruleId)]),
    ]);
}

export function sqlRuleCatalog(db: Kysely<object>): RuleCatalog {
  return {
    async get(ruleId) {
      const row = await tables(db).selectFrom('routing_rules').select('rule').where('rule_id', '=', ruleId).executeTakeFirst();
      return row && parseStored(row.rule);
    },
    async listAll(page) {
      let query = tables(db)
        .selectFrom('routing_rules')
        .select(['rule_id', 'priority', 'created_at', ruleBytes])
        .orderBy('rule_id')
        .limit(page.limit + 1);
      if (page.cursor !== undefined) query = query.where('rule_id', '>', decodeCursor(page.cursor));
      return pageWithin(db, await query.execute(), page.limit, (row) => row.rule_id);
    },
    async listByApp(appId) {
      return (await byPriority(db, appId).execute()).map((row) => parseStored(row.rule));
    },
    async countByApp(appId, options) {
      if (options?.taking && db.getExecutor().adapter instanceof PostgresAdapter)
        await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`intake.rules-of:${appId}`}, 0))`.execute(db);
      const row = await tables(db)
        .selectFrom('routing_rules')
        .select((eb) => eb.fn.countAll<number | string>().as('rules'))
        .where('app_id', '=', appId)
        .executeTakeFirst();
      return Number(row?.rules ?? 0);
    },
    async pageByApp(appId, page) {
      let query = tables(db)
        .selectFrom('routing_rules')
        .select(['rule_id', 'priority', 'created_at', ruleBytes])
        .where('app_id', '=', appId)
        .orderBy('priority', 'desc')
        .orderBy('created_at')
        .orderBy('rule_id')
        .limit(page.limit + 1);
      if (page.cursor !== undefined) query = query.where(afterRule(page.cursor));
      return pageWithin(db, await query.execute(), page.limit, (row) =>
        JSON.stringify([Number(row.priority), row.created_at, row.rule_id]),
      );
    },
  };
}

/** The owner a sealed credential is bound to: opened under another rule or reference, it does not open. */
const credentialOwner = (ruleId: string, reference: string) => `${ruleId}/${reference}`;

/**
 * Signing secrets and destination credentials sealed at rest; secrets written in clear before sealing
 * existed still open. A credential a rule no longer refers to is kept until the rule is deleted: a
 * worker may still hold the rule's previous version for a moment.
 */
export function sqlSecretVault(box: SecretBox): (db: Kysely<object>) => SecretVault {
  return (db) => {
    const row = (ruleId: string) =>
      tables(db)
        .selectFrom('routing_secrets')
        .select(['secret', 'previous_secret', 'previous_until'])
        .where('rule_id', '=', ruleId)
        .executeTakeFirst();
    return {
      async get(ruleId) {
        const stored = (await row(ruleId))?.secret;
        return stored === undefined ? undefined : box.open(ruleId, stored);
      },
      async signingSecrets(ruleId, at) {
        const stored = await row(ruleId);
        if (!stored) return [];
        const current = box.open(ruleId, stored.secret);
        const honoured = stored.previous_secret !== null && stored.previous_until !== null && at < stored.previous_until;
        return honoured && stored.previous_secret !== null ? [current, box.open(ruleId, stored.previous_secret)] : [current];
      },
      async set(ruleId, secret, keepPreviousUntil) {
        const sealed = box.seal(ruleId, secret);
        const replaced = keepPreviousUntil === undefined ? undefined : (await row(ruleId))?.secret;
        const previous =
          replaced === undefined
            ? { previous_secret: null, previous_until: null }
            : { previous_secret: box.seal(ruleId, box.open(ruleId, replaced)), previous_until: keepPreviousUntil ?? null };
        await tables(db)
          .insertInto('routing_secrets')
          .values({ rule_id: ruleId, secret: sealed, ...previous })
          .onConflict((oc) => oc.column('rule_id').doUpdateSet({ secret: sealed, ...previous }))
          .execute();
      },
      async openValues(ruleId, references) {
        const opened = new Map<string, string>();
        for (const piece of keyPieces(db, [...new Set(references)])) {
          const rows = await tables(db)
            .selectFrom('routing_sealed_values')
            .select(['reference', 'sealed'])
            .where('rule_id', '=', ruleId)
            .where('reference', 'in', piece)
            .execute();
          for (const { reference, sealed } of rows) {
            try {
              opened.set(reference, box.open(credentialOwner(ruleId, reference), sealed));
            } catch {
              // Sealed with a key since lost (see adoptSecretKey): the rule needs the credential again.
            }
          }
        }
        return opened;
      },
      async sealValues(ruleId, values) {
        for (const [reference, value] of Object.entries(values)) {
          const sealed = box.seal(credentialOwner(ruleId, reference), value);
          await tables(db)
            .insertInto('routing_sealed_values')
            .values({ rule_id: ruleId, reference, sealed })
            .onConflict((oc) => oc.columns(['rule_id', 'reference']).doUpdateSet({ sealed }))
            .execute();
        }
      },
    };
  };
}

/** Seals the secrets still stored in clear (written before sealing existed); answers how many. */
export async function sealClearSecrets(db: Kysely<object>, box: SecretBox): Promise<number> {
  const rows = await tables(db).selectFrom('routing_secrets').select(['rule_id', 'secret']).execute();
  let sealed = 0;
  for (const row of rows) {
    if (box.isSealed(row.secret)) continue;
    await tables(db)
      .updateTable('routing_secrets')
      .set({ secret: box.seal(row.rule_id, row.secret) })
      .where('rule_id', '=', row.rule_id)
      .where('secret', '=', row.secret)
      .execute();
    sealed++;
  }
  return sealed;
}
