import { ValidationError } from '../../shared/errors.js';
import type { Conversion } from './conversion.js';
import { compareTouches, type Touch } from './touch.js';
import { sameVisitor, shiftInstant, type ExternalId, type Instant, type Visitor } from './values.js';

export const ATTRIBUTION_MODELS = ['first_touch', 'last_touch', 'linear', 'position_based'] as const;
export type AttributionModel = (typeof ATTRIBUTION_MODELS)[number];
export const DEFAULT_MODEL: AttributionModel = 'last_touch';

const DAY_MS = 24 * 60 * 60_000;
export const DEFAULT_LOOKBACK_DAYS = 30;
const MAX_LOOKBACK_DAYS = 3650;

/** How far before a conversion a touch still earns a share of it. */
export function lookbackOfDays(days: number): number {
  if (!Number.isInteger(days) || days < 1 || days > MAX_LOOKBACK_DAYS) {
    throw new ValidationError(
      'attribution.invalid-lookback',
      `the lookback window must be 1 to ${MAX_LOOKBACK_DAYS} whole days (got ${days})`,
      [{ path: 'lookback_days', message: `must be an integer from 1 to ${MAX_LOOKBACK_DAYS}` }],
    );
  }
  return days * DAY_MS;
}

/** What one conversion gives one partner's campaign under one model. */
export interface Credit {
  readonly model: AttributionModel;
  readonly partnerId: ExternalId;
  readonly campaignId: ExternalId;
  /** Share of the conversion, 0 to 1: how much of "one conversion" the campaign earned. */
  readonly share: number;
  /** The same share of the conversion's value. */
  readonly value: number;
}

export interface TimeRange {
  readonly from: Instant;
  readonly to: Instant;
}

/**
 * Shares of one conversion earned by each of `count` touches, in the order they happened.
 * Position-based gives 40% to the first and to the last touch and splits 20% among those between;
 * with one touch it takes everything, with two they split it 50/50.
 */
export function sharesOf(model: AttributionModel, count: number): number[] {
  if (count === 0) return [];
  const last = count - 1;
  switch (model) {
    case 'first_touch':
      return Array.from({ length: count }, (_, i) => (i === 0 ? 1 : 0));
    case 'last_touch':
      return Array.from({ length: count }, (_, i) => (i === last ? 1 : 0));
    case 'linear':
      return Array.from({ length: count }, () => 1 / count);
    case 'position_based':
      if (count === 1) return [1];
      if (count === 2) return [0.5, 0.5];
      return Array.from({ length: count }, (_, i) => (i === 0 || i === last ? 0.4 : 0.2 / (count - 2)));
  }
}

/** Touches that may share a conversion: the visitor's, from `lookbackMs` before it up to the conversion itself. */
export function lookbackWindowOf(conversion: Pick<Conversion, 'occurredAt'>, lookbackMs: number): TimeRange {
  return { from: shiftInstant(conversion.occurredAt, -lookbackMs), to: conversion.occurredAt };
}

/** Conversions a touch may share: from the touch itself up to `lookbackMs` after it. */
export function conversionsReachedBy(touch: Pick<Touch, 'occurredAt'>, lookbackMs: number): TimeRange {
  return { from: touch.occurredAt, to: shiftInstant(touch.occurredAt, lookbackMs) };
}

/**
 * Touches a conversion is credited from: its window's first and the latest after it, 50 in all. A
 * journey of a thousand campaigns would otherwise give each conversion thousands of credit rows,
 * rewritten whenever a late touch reaches it, while every other writer waits (a single message froze
 * ingestion for minutes). The first-touch and last-touch models stay exact; linear and position-based
 * share among the touches kept.
 */
export const MAX_TOUCHES_CREDITED = 50;

/**
 * Credits of a conversion under every model, from the touches in its lookback window of its visitor and
 * of the anonymous ids known to be that visitor (`identities`), at most `MAX_TOUCHES_CREDITED` of them.
 * Only the touches' `occurred_at` orders them, never their arrival, so the result is the same whatever
 * order the events were delivered in. Several touches of one campaign add up into one credit.
 */
export function attributeConversion(
  conversion: Conversion,
  touches: readonly Touch[],
  lookbackMs: number,
  identities: readonly Visitor[] = [conversion.visitor],
): Credit[] {
  const own = touches.filter((t) => identities.some((visitor) => sameVisitor(t.visitor, visitor))).sort(compareTouches);
  return attributeConversions([conversion], own, lookbackMs)[0]?.credits ?? [];
}

/**
 * The same for many conversions of one visitor at once, from `touches` that are all of that visitor
 * (or its identities) and in `compareTouches` order: each window is found by binary search, so a
 * thousand conversions over forty thousand touches cost a thousand searches, not a thousand sorts.
 */
export function attributeConversions(
  conversions: readonly Conversion[],
  sortedTouches: readonly Touch[],
  lookbackMs: number,
): Array<{ conversionId: string; credits: Credit[] }> {
  return conversions.map((conversion) => {
    const window = lookbackWindowOf(conversion, lookbackMs);
    const start = firstAtOrAfter(sortedTouches, window.from, false);
    const end = firstAtOrAfter(sortedTouches, window.to, true);
    return { conversionId: conversion.id, credits: creditsOf(conversion, sortedTouches.slice(start, end)) };
  });
}

/** The index of the first touch at or after `at` (strictly after it when `after`). */
function firstAtOrAfter(touches: readonly Touch[], at: Instant, after: boolean): number {
  let low = 0;
  let high = touches.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const occurredAt = touches[middle]?.occurredAt ?? at;
    if (after ? occurredAt <= at : occurredAt < at) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** Credits under every model from a conversion's window's touches, in order (at most 50 of them count). */
function creditsOf(conversion: Conversion, inWindow: readonly Touch[]): Credit[] {
  const first = inWindow[0];
  const eligible =
    first && inWindow.length > MAX_TOUCHES_CREDITED ? [first, ...inWindow.slice(inWindow.length - (MAX_TOUCHES_CREDITED - 1))] : inWindow;
  return ATTRIBUTION_MODELS.flatMap((model) => {
    const byCampaign = new Map<string, { partnerId: ExternalId; campaignId: ExternalId; share: number }>();
    sharesOf(model, eligible.length).forEach((share, i) => {
      const touch = eligible[i];
      if (!touch || share === 0) return;
      const key = JSON.stringify([touch.partnerId, touch.campaignId]);
      const credit = byCampaign.get(key) ?? { partnerId: touch.partnerId, campaignId: touch.campaignId, share: 0 };
      byCampaign.set(key, { ...credit, share: credit.share + share });
    });
    return [...byCampaign.values()].map((credit) => ({ model, ...credit, value: credit.share * conversion.value }));
  });
}
