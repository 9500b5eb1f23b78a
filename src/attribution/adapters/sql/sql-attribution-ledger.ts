import type { Kysely } from 'kysely';
import { scopesOf, type AttributionLedger } from '../../application/ports.js';
import type { Conversion } from '../../domain/conversion.js';
import type { IdentityLink } from '../../domain/analytics-message.js';
import { compareTouches, type Touch } from '../../domain/touch.js';
import type { TimeRange } from '../../domain/attribution-models.js';
import type { Instant, Visitor } from '../../domain/values.js';
import { insertTemplate } from '../../../shared/sql/insert-template.js';
import { keyPieces, rowPieces } from '../../../shared/sql/statement-shapes.js';
import {
  appColumnOf,
  directTiesStatement,
  COUNT_COLUMN,
  conversionOf,
  tables,
  touchOf,
  type ConversionRow,
  type IdentityLinkRow,
  type TouchRow,
  anonymousIdsOf,
  usersOf,
} from './attribution-tables.js';

/** The items whose keys came back from an insert, each once, in the order given. */
function keptOf<T>(items: readonly T[], keyOf: (item: T) => string, returned: ReadonlySet<string>): T[] {
  const kept: T[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    const key = keyOf(item);
    if (!returned.has(key) || seen.has(key)) continue;
    seen.add(key);
    kept.push(item);
  }
  return kept;
}

// The facts' inserts run for every tracking event and conversion: their text is kept per row count.
const insertTouches = insertTemplate<TouchRow, { tracking_event_id: string }>(
  ['tracking_event_id', 'app_id', 'visitor_id', 'partner_id', 'campaign_id', 'interaction_type', 'occurred_at'],
  (db, rows) =>
    tables(db)
      .insertInto('attribution_touches')
      .values(rows)
      .onConflict((oc) => oc.column('tracking_event_id').doNothing())
      .returning('tracking_event_id'),
);
const insertConversions = insertTemplate<ConversionRow, { conversion_id: string }>(
  ['conversion_id', 'app_id', 'visitor_id', 'value', 'occurred_at', 'recorded_at'],
  (db, rows) =>
    tables(db)
      .insertInto('attribution_conversions')
      .values(rows)
      .onConflict((oc) => oc.column('conversion_id').doNothing())
      .returning('conversion_id'),
);

const touchRowOf = (touch: Touch): TouchRow => ({
  tracking_event_id: touch.trackingEventId,
  app_id: appColumnOf(touch.visitor),
  visitor_id: touch.visitor.id,
  partner_id: touch.partnerId,
  campaign_id: touch.campaignId,
  interaction_type: touch.interactionType,
  occurred_at: touch.occurredAt,
});
const conversionRowOf = (conversion: Conversion): ConversionRow => ({
  conversion_id: conversion.id,
  app_id: appColumnOf(conversion.visitor),
  visitor_id: conversion.visitor.id,
  value: conversion.value,
  occurred_at: conversion.occurredAt,
  recorded_at: conversion.recordedAt,
});

const linkRowOf = (link: IdentityLink): IdentityLinkRow => ({
  app_id: appColumnOf(link.user),
  anonymous_id: link.anonymous.id,
  user_id: link.user.id,
});

/** Visitor ids by the application column they are kept under, for one `in` list each. */
function idsByApplication(visitors: readonly Visitor[]): Map<string, string[]> {
  const byApp = new Map<string, string[]>();
  for (const visitor of visitors) {
    const app = appColumnOf(visitor);
    byApp.set(app, [...(byApp.get(app) ?? []), visitor.id]);
  }
  return byApp;
}

type ScopeCount = { scope: string; scope_id: string; clicks: number; views: number; engagements: number; unique_visitors: number };

/**
 * Attribution's tables as its subscriber writes them, a few multi-row statements per batch. The
 * dedupe is the primary keys' ON CONFLICT DO NOTHING; RETURNING tells which rows are new.
 */
export function sqlAttributionLedger(db: Kysely<object>): AttributionLedger {
  const t = tables(db);
  /** The touches of these visitors, as one query per application and piece of ids. */
  const touchesOfEach = (visitors: readonly Visitor[]) =>
    [...idsByApplication(visitors)].flatMap(([app, ids]) =>
      [...keyPieces(db, ids)].map((piece) =>
        t.selectFrom('attribution_touches').where('app_id', '=', app).where('visitor_id', 'in', piece),
      ),
    );
  /** The touches of these visitors within the range, likewise. */
  const touchesWithin = (visitors: readonly Visitor[], range: TimeRange) =>
    touchesOfEach(visitors).map((query) => query.where('occurred_at', '>=', range.from).where('occurred_at', '<=', range.to));
  return {
    async addTouches(touches) {
      const returned = new Set<string>();
      for (const piece of rowPieces(db, touches)) {
        const rows = await insertTouches(db, piece.map(touchRowOf));
        for (const row of rows) returned.add(row.tracking_event_id);
      }
      return keptOf(touches, (touch) => touch.trackingEventId, returned);
    },

    async addConversions(conversions) {
      const returned = new Set<string>();
      for (const piece of rowPieces(db, conversions)) {
        const rows = await insertConversions(db, piece.map(conversionRowOf));
        for (const row of rows) returned.add(row.conversion_id);
      }
      return keptOf(conversions, (conversion) => conversion.id, returned);
    },

    async countTouches(touches) {
      // Summed per scope first: one upsert row per scope, as PostgreSQL cannot update a row twice in one statement.
      const counts = new Map<string, ScopeCount>();
      const visitors = new Map<string, { scope: string; scope_id: string; app_id: string; visitor_id: string }>();
      for (const touch of touches) {
        for (const scope of scopesOf(touch)) {
          const key = JSON.stringify([scope.kind, scope.id]);
          const count = counts.get(key) ?? {
            scope: scope.kind,
            scope_id: scope.id,
            clicks: 0,
            views: 0,
            engagements: 0,
            unique_visitors: 0,
          };
          count[COUNT_COLUMN[touch.interactionType]] += 1;
          counts.set(key, count);
          const appId = appColumnOf(touch.visitor);
          visitors.set(JSON.stringify([scope.kind, scope.id, appId, touch.visitor.id]), {
            scope: scope.kind,
            scope_id: scope.id,
            app_id: appId,
            visitor_id: touch.visitor.id,
          });
        }
      }
      for (const piece of rowPieces(db, [...visitors.values()])) {
        const newVisitors = await t
          .insertInto('attribution_scope_visitors')
          .values(piece)
          .onConflict((oc) => oc.columns(['scope', 'scope_id', 'app_id', 'visitor_id']).doNothing())
          .returning(['scope', 'scope_id'])
          .execute();
        for (const row of newVisitors) {
          const count = counts.get(JSON.stringify([row.scope, row.scope_id]));
          if (count) count.unique_visitors += 1;
        }
      }
      for (const piece of rowPieces(db, [...counts.values()])) {
        await t
          .insertInto('attribution_scope_totals')
          .values(piece)
          .onConflict((oc) =>
            oc.columns(['scope', 'scope_id']).doUpdateSet((eb) => ({
              clicks: eb('attribution_scope_totals.clicks', '+', eb.ref('excluded.clicks')),
              views: eb('attribution_scope_totals.views', '+', eb.ref('excluded.views')),
              engagements: eb('attribution_scope_totals.engagements', '+', eb.ref('excluded.engagements')),
              unique_visitors: eb('attribution_scope_totals.unique_visitors', '+', eb.ref('excluded.unique_visitors')),
            })),
          )
          .execute();
      }
    },

    async conversionsOf(visitor, range, limit) {
      const rows = await t
        .selectFrom('attribution_conversions')
        .selectAll()
        .where('app_id', '=', appColumnOf(visitor))
        .where('visitor_id', '=', visitor.id)
        .where('occurred_at', '>=', range.from)
        .where('occurred_at', '<=', range.to)
        .orderBy('occurred_at')
        .orderBy('conversion_id')
        .limit(limit)
        .execute();
      return rows.map(conversionOf);
    },

    async addLinks(links, limits) {
      // Each user's and each anonymous id's ties, read once a batch, up to their limits.
      const cached = new Map<string, Set<string>>();
      const tiesOf = async (app: string, by: 'user_id' | 'anonymous_id', id: string, limit: number) => {
        const key = JSON.stringify([app, by, id]);
        let known = cached.get(key);
        if (!known) {
          const { rows } = await directTiesStatement(db, app, by, id, limit).execute(db);
          cached.set(key, (known = new Set(rows.map((r) => r.id))));
        }
        return known;
      };
      const kept: IdentityLink[] = [];
      for (const link of links) {
        const row = linkRowOf(link);
        const ids = await tiesOf(row.app_id, 'user_id', row.user_id, limits.anonymousIdsPerUser);
        if (ids.has(row.anonymous_id) || ids.size >= limits.anonymousIdsPerUser) continue;
        const users = await tiesOf(row.app_id, 'anonymous_id', row.anonymous_id, limits.usersPerAnonymousId);
        if (users.size >= limits.usersPerAnonymousId) continue;
        ids.add(row.anonymous_id);
        users.add(row.user_id);
        kept.push(link);
      }
      for (const piece of rowPieces(db, kept.map(linkRowOf))) {
        await t
          .insertInto('attribution_identity_links')
          .values(piece)
          .onConflict((oc) => oc.columns(['app_id', 'anonymous_id', 'user_id']).doNothing())
          .execute();
      }
      return kept;
    },

    anonymousIdsOf: (user) => anonymousIdsOf(db, user),

    usersOf: (anonymous) => usersOf(db, anonymous),

    async touchSpan(visitors) {
      let span: TimeRange | undefined;
      for (const query of touchesOfEach(visitors)) {
        const row = await query
          .select((eb) => [eb.fn.min('occurred_at').as('first'), eb.fn.max('occurred_at').as('last')])
          .executeTakeFirst();
        if (!row?.first || !row.last) continue;
        const [first, last] = [row.first as Instant, row.last as Instant];
        span = span ? { from: first < span.from ? first : span.from, to: last > span.to ? last : span.to } : { from: first, to: last };
      }
      return span;
    },

    async touchesOf(visitors, range) {
      const touches: Touch[] = [];
      for (const within of touchesWithin(visitors, range)) touches.push(...(await within.selectAll().execute()).map(touchOf));
      return touches.sort(compareTouches);
    },

    async hasTouches(visitors, range) {
      for (const within of touchesWithin(visitors, range)) {
        if ((await within.select('tracking_event_id').limit(1).executeTakeFirst()) !== undefined) return true;
      }
      return false;
    },

    async replaceCredits(credited) {
      for (const piece of keyPieces(
        db,
        credited.map((entry) => entry.conversionId),
      )) {
        await t.deleteFrom('attribution_credits').where('conversion_id', 'in', piece).execute();
      }
      const rows = credited.flatMap(({ conversionId, credits }) =>
        credits.map((credit) => ({
          conversion_id: conversionId,
          model: credit.model,
          partner_id: credit.partnerId,
          campaign_id: credit.campaignId,
          share: credit.share,
          value: credit.value,
        })),
      );
      for (const piece of rowPieces(db, rows)) await t.insertInto('attribution_credits').values(piece).execute();
    },

    async clear() {
      await t.deleteFrom('attribution_credits').execute();
      await t.deleteFrom('attribution_scope_visitors').execute();
      await t.deleteFrom('attribution_scope_totals').execute();
      await t.deleteFrom('attribution_conversions').execute();
      await t.deleteFrom('attribution_touches').execute();
      await t.deleteFrom('attribution_identity_links').execute();
    },
  };
}
