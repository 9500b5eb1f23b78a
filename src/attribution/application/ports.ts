import type { Kysely } from 'kysely';
import type { Page, PageRequest } from '../../shared/pagination.js';
import type { AttributionModel, Credit, TimeRange } from '../domain/attribution-models.js';
import type { Conversion } from '../domain/conversion.js';
import type { InteractionCounts } from '../domain/interaction-weights.js';
import type { Touch } from '../domain/touch.js';

/** What attribution totals are kept for. */
export type Scope = { readonly kind: 'campaign' | 'partner'; readonly id: string };

/** Attribution's tables as its subscriber writes them, inside the subscriber's transaction. */
export interface AttributionLedger {
  /** Keeps the touch; false when it was already kept (the same event delivered again). */
  addTouch(touch: Touch): Promise<boolean>;
  /** Keeps the conversion; false when it was already kept. */
  addConversion(conversion: Conversion): Promise<boolean>;
  /** Counts the touch's interaction in the scope's totals, and its visitor once per scope. */
  countTouch(scope: Scope, touch: Touch): Promise<void>;
  /** The visitor's conversions that occurred within the range (bounds included), in the order they occurred. */
  conversionsOf(visitorId: string, range: TimeRange): Promise<Conversion[]>;
  /** The visitor's touches that occurred within the range (bounds included), in the order they occurred. */
  touchesOf(visitorId: string, range: TimeRange): Promise<Touch[]>;
  /** Replaces whatever the conversion credited before with these credits. */
  replaceCredits(conversionId: string, credits: readonly Credit[]): Promise<void>;
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
  firstTouch(visitorId: string): Promise<Touch | undefined>;
  lastTouch(visitorId: string): Promise<Touch | undefined>;
  touches(visitorId: string, page: PageRequest): Promise<Page<Touch>>;
  conversionCount(visitorId: string): Promise<number>;
  conversion(conversionId: string): Promise<Conversion | undefined>;
  creditsOf(conversionId: string): Promise<Credit[]>;
}
