import type { Kysely } from 'kysely';
import type { AttributionModel, Credit } from '../../domain/attribution-models.js';
import type { Conversion } from '../../domain/conversion.js';
import type { Touch } from '../../domain/touch.js';
import type { ExternalId, Instant, InteractionType, Visitor } from '../../domain/values.js';

// Type aliases, not interfaces: Kysely's withTables needs index-compatible shapes.
export type TouchRow = {
  tracking_event_id: string;
  app_id: string;
  visitor_id: string;
  partner_id: string;
  campaign_id: string;
  interaction_type: string;
  occurred_at: string;
};
export type ConversionRow = {
  conversion_id: string;
  app_id: string;
  visitor_id: string;
  value: number;
  occurred_at: string;
  recorded_at: string;
};
/** Counters are bigint columns: PostgreSQL hands them back as strings, SQLite as numbers. */
export type ScopeTotalsRow = {
  scope: string;
  scope_id: string;
  clicks: number | string;
  views: number | string;
  engagements: number | string;
  unique_visitors: number | string;
};
/** An anonymous id (`anonymous_id`) known to be a user (`user_id`) of one application. */
export type IdentityLinkRow = { app_id: string; anonymous_id: string; user_id: string };
export type CreditRow = { conversion_id: string; model: string; partner_id: string; campaign_id: string; share: number; value: number };

type Tables = {
  attribution_touches: TouchRow;
  attribution_conversions: ConversionRow;
  attribution_scope_totals: ScopeTotalsRow;
  attribution_scope_visitors: { scope: string; scope_id: string; app_id: string; visitor_id: string };
  attribution_credits: CreditRow;
  attribution_identity_links: IdentityLinkRow;
};

export const tables = (db: Kysely<object>) => db.withTables<Tables>();

/** Which totals column counts each interaction type. */
export const COUNT_COLUMN = { click: 'clicks', view: 'views', engagement: 'engagements' } as const satisfies Record<
  InteractionType,
  keyof ScopeTotalsRow
>;

/**
 * A visitor is two columns, `app_id` and `visitor_id`. A visitor of the tracking API has no
 * application: its `app_id` is '', which no application id can be (they are never blank).
 */
const TRACKING_API = '';
export const appColumnOf = (visitor: Visitor): string => visitor.appId ?? TRACKING_API;
export const visitorOf = (row: { app_id: string; visitor_id: string }): Visitor => ({
  appId: row.app_id === TRACKING_API ? null : row.app_id,
  id: row.visitor_id as ExternalId,
});

// The rows were valid when written; reading them back only restores their brands.
export const touchOf = (row: TouchRow): Touch => ({
  trackingEventId: row.tracking_event_id,
  visitor: visitorOf(row),
  partnerId: row.partner_id as ExternalId,
  campaignId: row.campaign_id as ExternalId,
  interactionType: row.interaction_type as InteractionType,
  occurredAt: row.occurred_at as Instant,
});

export const conversionOf = (row: ConversionRow): Conversion => ({
  id: row.conversion_id,
  visitor: visitorOf(row),
  value: Number(row.value),
  occurredAt: row.occurred_at as Instant,
  recordedAt: row.recorded_at as Instant,
});

export const creditOf = (row: CreditRow): Credit => ({
  model: row.model as AttributionModel,
  partnerId: row.partner_id as ExternalId,
  campaignId: row.campaign_id as ExternalId,
  share: Number(row.share),
  value: Number(row.value),
});

/** The anonymous ids tied to an SDK user, in order of id (at most `TIE_LIMITS.anonymousIdsPerUser`). */
export async function anonymousIdsOf(db: Kysely<object>, user: Visitor): Promise<Visitor[]> {
  const rows = await tables(db)
    .selectFrom('attribution_identity_links')
    .select(['app_id', 'anonymous_id'])
    .where('app_id', '=', appColumnOf(user))
    .where('user_id', '=', user.id)
    .orderBy('anonymous_id')
    .execute();
  return rows.map((row) => visitorOf({ app_id: row.app_id, visitor_id: row.anonymous_id }));
}
