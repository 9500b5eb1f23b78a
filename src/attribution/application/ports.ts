import type { Kysely } from 'kysely';
import type { Page, PageRequest } from '../../shared/pagination.js';
import type { AttributionModel, Credit, TimeRange } from '../domain/attribution-models.js';
import type { IdentityLink, TieLimits } from '../domain/analytics-message.js';
import type { Conversion } from '../domain/conversion.js';
import type { InteractionCounts } from '../domain/interaction-weights.js';
import type { Touch } from '../domain/touch.js';
import type { Visitor } from '../domain/values.js';

/** What attribution totals are kept for. */
export type Scope = { readonly kind: 'campaign' | 'partner'; readonly id: string };

/** The scopes whose totals a touch counts in. */
export const scopesOf = (touch: Touch): Scope[] => [
  { kind: 'campaign', id: touch.campaignId },
  { kind: 'partner', id: touch.partnerId },
];

/** Attribution's tables as its subscriber writes them, inside the subscriber's transaction. */
export interface AttributionLedger {
  /** Keeps the touches; gives back those not kept before (a touch delivered again, or twice in the list, is kept once). */
  addTouches(touches: readonly Touch[]): Promise<Touch[]>;
  /** Keeps the conversions; gives back those not kept before. */
  addConversions(conversions: readonly Conversion[]): Promise<Conversion[]>;
  /** Counts each touch's interaction in its scopes' totals, and its visitor once per scope; give each touch once. */
  countTouches(touches: readonly Touch[]): Promise<void>;
  /**
   * Keeps the links between anonymous ids and users, in the order given, each while neither its user nor
   * its anonymous id has reached its limit; gives back those kept now (not before).
   */
  addLinks(links: readonly IdentityLink[], limits: TieLimits): Promise<IdentityLink[]>;
  /**
   * The anonymous ids known to be this user: tied to it, tied to those, and so on, within
   * `CHAIN_LIMITS` (decision 0049), in order of id; never the user itself.
   */
  anonymousIdsOf(user: Visitor): Promise<Visitor[]>;
  /**
   * The users this id is known to be: those it is tied to, those they are tied to, and so on, within
   * `CHAIN_LIMITS`; never the id itself. Every user whose `anonymousIdsOf` holds the id, while the
   * ties stay within the bounds.
   */
  usersOf(anonymous: Visitor): Promise<Visitor[]>;
  /** When the first and last touches of any of these visitors occurred; undefined when they have none. */
  touchSpan(visitors: readonly Visitor[]): Promise<TimeRange | undefined>;
  /** The visitor's first `limit` conversions that occurred within the range (bounds included), in the order they occurred. */
  conversionsOf(visitor: Visitor, range: TimeRange, limit: number): Promise<Conversion[]>;
  /** These visitors' touches that occurred within the range (bounds included), in the order they occurred. */
  touchesOf(visitors: readonly Visitor[], range: TimeRange): Promise<Touch[]>;
  /** Whether any of these visitors has a touch within the range (bounds included). */
  hasTouches(visitors: readonly Visitor[], range: TimeRange): Promise<boolean>;
  /** Replaces whatever each conversion credited before with its new credits. */
  replaceCredits(credited: ReadonlyArray<{ readonly conversionId: string; readonly credits: readonly Credit[] }>): Promise<void>;
  /** Throws everything away, for a rebuild from the log. */
  clear(): Promise<void>;
}

export type AttributionLedgerFor = (db: Kysely<object>) => AttributionLedger;

export interface ScopeTotals {
  readonly interactions: InteractionCounts;
  readonly uniqueVisitors: number;
}

export interface CreditTotals {
  /** Conversions credited to the scope: fractional under the linear and position-based models. */
  readonly conversions: number;
  readonly value: number;
}

/** Attribution's tables as its queries read them. */
export interface AttributionViews {
  totals(scope: Scope): Promise<ScopeTotals | undefined>;
  credited(scope: Scope, model: AttributionModel): Promise<CreditTotals>;
  /** The anonymous ids known to be this SDK user (see `AttributionLedger.anonymousIdsOf`). */
  anonymousIdsOf(user: Visitor): Promise<Visitor[]>;
  /** The first and last touch of any of these visitors, and a page of their touches in the order they occurred. */
  firstTouch(visitors: readonly Visitor[]): Promise<Touch | undefined>;
  lastTouch(visitors: readonly Visitor[]): Promise<Touch | undefined>;
  touches(visitors: readonly Visitor[], page: PageRequest): Promise<Page<Touch>>;
  conversionCount(visitor: Visitor): Promise<number>;
  conversion(conversionId: string): Promise<Conversion | undefined>;
  creditsOf(conversionId: string): Promise<Credit[]>;
}
