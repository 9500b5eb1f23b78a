import type { Kysely } from 'kysely';
import type { AttributionLedger } from '../../application/ports.js';
import { COUNT_COLUMN, conversionOf, tables, touchOf } from './attribution-tables.js';

const inserted = (result: { numInsertedOrUpdatedRows?: bigint }) => Number(result.numInsertedOrUpdatedRows ?? 0) > 0;

/** Attribution's tables as its subscriber writes them; the dedupe is the primary keys' ON CONFLICT DO NOTHING. */
export function sqlAttributionLedger(db: Kysely<object>): AttributionLedger {
  const t = tables(db);
  return {
    async addTouch(touch) {
      const result = await t
        .insertInto('attribution_touches')
        .values({
          tracking_event_id: touch.trackingEventId,
          visitor_id: touch.visitorId,
          partner_id: touch.partnerId,
          campaign_id: touch.campaignId,
          interaction_type: touch.interactionType,
          occurred_at: touch.occurredAt,
        })
        .onConflict((oc) => oc.column('tracking_event_id').doNothing())
        .executeTakeFirst();
      return inserted(result);
    },

    async addConversion(conversion) {
      const result = await t
        .insertInto('attribution_conversions')
        .values({
          conversion_id: conversion.id,
          visitor_id: conversion.visitorId,
          value: conversion.value,
          occurred_at: conversion.occurredAt,
          recorded_at: conversion.recordedAt,
        })
        .onConflict((oc) => oc.column('conversion_id').doNothing())
        .executeTakeFirst();
      return inserted(result);
    },

    async countTouch(scope, touch) {
      const newVisitor = inserted(
        await t
          .insertInto('attribution_scope_visitors')
          .values({ scope: scope.kind, scope_id: scope.id, visitor_id: touch.visitorId })
          .onConflict((oc) => oc.columns(['scope', 'scope_id', 'visitor_id']).doNothing())
          .executeTakeFirst(),
      );
      const counted = COUNT_COLUMN[touch.interactionType];
      await t
        .insertInto('attribution_scope_totals')
        .values({
          scope: scope.kind,
          scope_id: scope.id,
          clicks: counted === 'clicks' ? 1 : 0,
          views: counted === 'views' ? 1 : 0,
          engagements: counted === 'engagements' ? 1 : 0,
          unique_visitors: newVisitor ? 1 : 0,
        })
        .onConflict((oc) =>
          oc.columns(['scope', 'scope_id']).doUpdateSet((eb) => ({
            clicks: eb('attribution_scope_totals.clicks', '+', eb.ref('excluded.clicks')),
            views: eb('attribution_scope_totals.views', '+', eb.ref('excluded.views')),
            engagements: eb('attribution_scope_totals.engagements', '+', eb.ref('excluded.engagements')),
            unique_visitors: eb('attribution_scope_totals.unique_visitors', '+', eb.ref('excluded.unique_visitors')),
          })),
        )
        .execute();
    },

    async conversionsOf(visitorId, range) {
      const rows = await t
        .selectFrom('attribution_conversions')
        .selectAll()
        .where('visitor_id', '=', visitorId)
        .where('occurred_at', '>=', range.from)
        .where('occurred_at', '<=', range.to)
        .orderBy('occurred_at')
        .orderBy('conversion_id')
        .execute();
      return rows.map(conversionOf);
    },

    async touchesOf(visitorId, range) {
      const rows = await t
        .selectFrom('attribution_touches')
        .selectAll()
        .where('visitor_id', '=', visitorId)
        .where('occurred_at', '>=', range.from)
        .where('occurred_at', '<=', range.to)
        .orderBy('occurred_at')
        .orderBy('tracking_event_id')
        .execute();
      return rows.map(touchOf);
    },

    async replaceCredits(conversionId, credits) {
      await t.deleteFrom('attribution_credits').where('conversion_id', '=', conversionId).execute();
      const rows = credits.map((credit) => ({
        conversion_id: conversionId,
        model: credit.model,
        partner_id: credit.partnerId,
        campaign_id: credit.campaignId,
        share: credit.share,
        value: credit.value,
      }));
      // 6 columns a row: 1000 rows stay far below SQLite's bound-parameter limit.
      for (let i = 0; i < rows.length; i += 1000) {
        await t
          .insertInto('attribution_credits')
          .values(rows.slice(i, i + 1000))
          .execute();
      }
    },

    async clear() {
      await t.deleteFrom('attribution_credits').execute();
      await t.deleteFrom('attribution_scope_visitors').execute();
      await t.deleteFrom('attribution_scope_totals').execute();
      await t.deleteFrom('attribution_conversions').execute();
      await t.deleteFrom('attribution_touches').execute();
    },
  };
}
