import type { Kysely } from 'kysely';
import { ValidationError } from '../../../shared/errors.js';
import { decodeCursor, pageOf } from '../../../shared/pagination.js';
import type { AttributionViews } from '../../application/ports.js';
import type { Touch } from '../../domain/touch.js';
import type { Visitor } from '../../domain/values.js';
import { appColumnOf, conversionOf, creditOf, tables, touchOf, anonymousIdsOf } from './attribution-tables.js';

// A touch's place in a journey is (occurred_at, tracking_event_id); occurred_at never holds this separator.
const SEPARATOR = '|';
const cursorOf = (touch: Touch) => `${touch.occurredAt}${SEPARATOR}${touch.trackingEventId}`;

function positionOf(cursor: string): { occurredAt: string; trackingEventId: string } {
  const key = decodeCursor(cursor);
  const at = key.indexOf(SEPARATOR);
  if (at < 0) {
    throw new ValidationError('pagination.invalid-cursor', 'cursor is not one this API returned', [
      { path: 'cursor', message: 'invalid cursor' },
    ]);
  }
  return { occurredAt: key.slice(0, at), trackingEventId: key.slice(at + 1) };
}

/** Attribution's tables as its queries read them: each read is one index range. */
export function sqlAttributionViews(db: Kysely<object>): AttributionViews {
  const t = tables(db);
  // A journey's visitors are one visitor, or an SDK user and its anonymous ids, all of one application:
  // one `in` list, bounded by the ties a user keeps (TIE_LIMITS).
  const touchesInOrder = (visitors: readonly Visitor[], direction: 'asc' | 'desc') =>
    t
      .selectFrom('attribution_touches')
      .selectAll()
      .where('app_id', '=', appColumnOf(visitors[0] as Visitor))
      .where(
        'visitor_id',
        'in',
        visitors.map((visitor) => visitor.id),
      )
      .orderBy('occurred_at', direction)
      .orderBy('tracking_event_id', direction);

  return {
    async totals(scope) {
      const row = await t
        .selectFrom('attribution_scope_totals')
        .selectAll()
        .where('scope', '=', scope.kind)
        .where('scope_id', '=', scope.id)
        .executeTakeFirst();
      return (
        row && {
          interactions: { click: Number(row.clicks), view: Number(row.views), engagement: Number(row.engagements) },
          uniqueVisitors: Number(row.unique_visitors),
        }
      );
    },

    async credited(scope, model) {
      const column = scope.kind === 'campaign' ? 'campaign_id' : 'partner_id';
      const row = await t
        .selectFrom('attribution_credits')
        .select((eb) => [
          eb.fn.sum<number | string | null>('share').as('conversions'),
          eb.fn.sum<number | string | null>('value').as('value'),
        ])
        .where('model', '=', model)
        .where(column, '=', scope.id)
        .executeTakeFirst();
      return { conversions: Number(row?.conversions ?? 0), value: Number(row?.value ?? 0) };
    },

    anonymousIdsOf: (user) => anonymousIdsOf(db, user),

    async firstTouch(visitors) {
      const row = await touchesInOrder(visitors, 'asc').limit(1).executeTakeFirst();
      return row && touchOf(row);
    },

    async lastTouch(visitors) {
      const row = await touchesInOrder(visitors, 'desc').limit(1).executeTakeFirst();
      return row && touchOf(row);
    },

    async touches(visitors, page) {
      let query = touchesInOrder(visitors, 'asc').limit(page.limit + 1);
      if (page.cursor !== undefined) {
        const after = positionOf(page.cursor);
        query = query.where((eb) =>
          eb.or([
            eb('occurred_at', '>', after.occurredAt),
            eb.and([eb('occurred_at', '=', after.occurredAt), eb('tracking_event_id', '>', after.trackingEventId)]),
          ]),
        );
      }
      return pageOf((await query.execute()).map(touchOf), page.limit, cursorOf);
    },

    async conversionCount(visitor) {
      const row = await t
        .selectFrom('attribution_conversions')
        .select((eb) => eb.fn.countAll<number | string>().as('count'))
        .where('app_id', '=', appColumnOf(visitor))
        .where('visitor_id', '=', visitor.id)
        .executeTakeFirst();
      return Number(row?.count ?? 0);
    },

    async conversion(conversionId) {
      const row = await t.selectFrom('attribution_conversions').selectAll().where('conversion_id', '=', conversionId).executeTakeFirst();
      return row && conversionOf(row);
    },

    async creditsOf(conversionId) {
      const rows = await t
        .selectFrom('attribution_credits')
        .selectAll()
        .where('conversion_id', '=', conversionId)
        .orderBy('model')
        .orderBy('partner_id')
        .orderBy('campaign_id')
        .execute();
      return rows.map(creditOf);
    },
  };
}
