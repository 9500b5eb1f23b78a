import { sql, type Kysely } from 'kysely';
import { compareBytes } from '../../../shared/byte-order.js';
import { onSqlite } from '../../../shared/sql/statement-shapes.js';
import { CHAIN_LIMITS } from '../../domain/analytics-message.js';
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

/**
 * Rows a walk of ties reads at most. A row is an id and how many ties away it is; an id met again at
 * another distance (a cycle, two paths) is read again, so this is wider than `CHAIN_LIMITS.ids`.
 */
const CHAIN_ROWS = 4 * CHAIN_LIMITS.ids;

/**
 * The ids tied to `start`, then those tied to them, and so on, each with its step (how many ties
 * away), in one statement: towards anonymous ids (`by` user_id) or towards users (`by` anonymous_id).
 * The recursive query reads a step at a time (breadth first, on SQLite and PostgreSQL alike) and
 * stops after CHAIN_ROWS + 1 rows however many ties the database holds; a cycle ends there or at
 * the last step. Exported for its plan's test.
 */
export function tiesStatement(db: Kysely<object>, start: Visitor, by: 'user_id' | 'anonymous_id') {
  const other = by === 'user_id' ? 'anonymous_id' : 'user_id';
  const app = appColumnOf(start);
  const sqlite = onSqlite(db);
  // CROSS JOIN keeps SQLite from reading the links first: each step reads only the ties of the ids the last one found.
  const links = linksBy(db, by);
  // On PostgreSQL anonymous ids compare by bytes (COLLATE "C") and user ids in the database's
  // collation: compared in the anonymous ids' collation, the user index could not serve the step.
  const found = by === 'user_id' && !sqlite ? sql`c.id COLLATE "default"` : sql`c.id`;
  return sql<{ id: string; step: number | string }>`WITH RECURSIVE chain (id, step) AS (
      SELECT ${sql.ref(`l.${other}`)}, 1 FROM ${links} WHERE l.app_id = ${app} AND ${sql.ref(`l.${by}`)} = ${start.id}
      UNION
      SELECT ${sql.ref(`l.${other}`)}, c.step + 1 FROM chain AS c CROSS JOIN ${links}
      WHERE l.app_id = ${app} AND ${sql.ref(`l.${by}`)} = ${found} AND c.step < ${CHAIN_LIMITS.steps})
    SELECT id, step FROM chain LIMIT ${CHAIN_ROWS + 1}`;
}

/**
 * The ties table, read by `by`. Without statistics SQLite reads a user's ties through the primary key's
 * covering index, every tie of the application, rather than the user index.
 */
const linksBy = (db: Kysely<object>, by: 'user_id' | 'anonymous_id') =>
  sql`attribution_identity_links AS l ${by === 'user_id' && onSqlite(db) ? sql`INDEXED BY attribution_identity_links_user` : sql``}`;

/** The ids tied to `id` directly (one step), at most `limit` of them. */
export function directTiesStatement(db: Kysely<object>, app: string, by: 'user_id' | 'anonymous_id', id: string, limit: number) {
  const other = by === 'user_id' ? 'anonymous_id' : 'user_id';
  return sql<{ id: string }>`SELECT ${sql.ref(`l.${other}`)} AS id FROM ${linksBy(db, by)}
    WHERE l.app_id = ${app} AND ${sql.ref(`l.${by}`)} = ${id} LIMIT ${limit}`;
}

/** The ids `tiesStatement` finds, less `start`, within `CHAIN_LIMITS` (the nearest first, then by id), in order of id. */
async function tiedTo(db: Kysely<object>, start: Visitor, by: 'user_id' | 'anonymous_id'): Promise<Visitor[]> {
  const app = appColumnOf(start);
  const { rows } = await tiesStatement(db, start, by).execute(db);
  // Past the cap the last step read may be cut anywhere in it: it is left out whole, so what is kept
  // does not depend on the order the database read that step in.
  const last = Math.max(0, ...rows.map((row) => Number(row.step)));
  const complete = rows.length > CHAIN_ROWS ? rows.filter((row) => Number(row.step) < last) : rows;
  const nearest = new Map<string, number>();
  for (const row of complete) {
    const step = Number(row.step);
    if (row.id !== start.id && step < (nearest.get(row.id) ?? Infinity)) nearest.set(row.id, step);
  }
  return [...nearest]
    .sort(([a, stepA], [b, stepB]) => stepA - stepB || compareBytes(a, b))
    .slice(0, CHAIN_LIMITS.ids)
    .map(([id]) => id)
    .sort(compareBytes)
    .map((id) => visitorOf({ app_id: app, visitor_id: id }));
}

/**
 * The anonymous ids known to be an SDK user: tied to it, or to an id tied to it, and so on (an alias's
 * `previousId` with its own anonymous ids), within `CHAIN_LIMITS`, in order of id.
 */
export const anonymousIdsOf = (db: Kysely<object>, user: Visitor): Promise<Visitor[]> => tiedTo(db, user, 'user_id');

/** The users an id is known to be: those it is tied to, those they are tied to, and so on, within `CHAIN_LIMITS`. */
export const usersOf = (db: Kysely<object>, anonymous: Visitor): Promise<Visitor[]> => tiedTo(db, anonymous, 'anonymous_id');
