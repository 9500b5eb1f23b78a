import type { Subscriber } from '../../shared/subscriptions/subscriber.js';
import { attributeConversion, conversionsReachedBy, lookbackWindowOf, type TimeRange } from '../domain/attribution-models.js';
import { conversionFromRecorded } from '../domain/conversion.js';
import { touchFromPublished, TRACKING_EVENT_RECORDED, type Touch } from '../domain/touch.js';
import type { Instant } from '../domain/values.js';
import type { AttributionLedger, AttributionLedgerFor, Scope } from './ports.js';

export interface AttributionSubscriberDeps {
  readonly ledger: AttributionLedgerFor;
  readonly lookbackMs: number;
}

export const CONVERSION_RECORDED = 'ConversionRecorded';

/**
 * Keeps attribution from tracking events and conversions.
 *
 * Touches and conversions are kept as facts, deduplicated on their ids, so a redelivered event
 * changes nothing. Totals per campaign and partner only add up, so arrival order cannot change them.
 * Credits depend on order, so they are never updated incrementally: each conversion a new fact can
 * reach is credited again from every touch in its window, ordered by `occurred_at`. A touch that
 * arrives after its conversion therefore corrects the conversion's credits, and a replay, whatever
 * its batches, ends in the same tables.
 */
export function attributionSubscriber({ ledger: ledgerFor, lookbackMs }: AttributionSubscriberDeps): Subscriber {
  return {
    name: 'attribution',
    handles: [TRACKING_EVENT_RECORDED, CONVERSION_RECORDED],
    async handle(events, tx) {
      const ledger = ledgerFor(tx.db);
      const stale = staleConversions();
      for (const event of events) {
        if (event.type === TRACKING_EVENT_RECORDED) {
          const touch = touchFromPublished(event.data, event.metadata);
          if (!(await ledger.addTouch(touch))) continue;
          for (const scope of scopesOf(touch)) await ledger.countTouch(scope, touch);
          stale.add(touch.visitorId, conversionsReachedBy(touch, lookbackMs));
        } else if (event.type === CONVERSION_RECORDED) {
          const conversion = conversionFromRecorded(event.data);
          if (!(await ledger.addConversion(conversion))) continue;
          stale.add(conversion.visitorId, { from: conversion.occurredAt, to: conversion.occurredAt });
        }
      }
      for (const [visitorId, range] of stale.byVisitor()) await recredit(ledger, visitorId, range, lookbackMs);
    },
    async reset(tx) {
      await ledgerFor(tx.db).clear();
    },
  };
}

const scopesOf = (touch: Touch): Scope[] => [
  { kind: 'campaign', id: touch.campaignId },
  { kind: 'partner', id: touch.partnerId },
];

/** Credits again every conversion of the visitor in the range, from all the touches in their windows. */
async function recredit(ledger: AttributionLedger, visitorId: string, range: TimeRange, lookbackMs: number): Promise<void> {
  const conversions = await ledger.conversionsOf(visitorId, range);
  const first = conversions[0];
  const last = conversions.at(-1);
  if (!first || !last) return;
  // One read covers every window: from the earliest window's start to the latest conversion.
  const touches = await ledger.touchesOf(visitorId, { from: lookbackWindowOf(first, lookbackMs).from, to: last.occurredAt });
  for (const conversion of conversions) {
    await ledger.replaceCredits(conversion.id, attributeConversion(conversion, touches, lookbackMs));
  }
}

/**
 * The conversions a batch may have changed, per visitor, as one time range covering them all:
 * a range a little wider than needed only re-credits a conversion to the same result.
 */
function staleConversions() {
  const ranges = new Map<string, { from: Instant; to: Instant }>();
  return {
    add(visitorId: string, range: TimeRange) {
      const known = ranges.get(visitorId);
      ranges.set(
        visitorId,
        known ? { from: range.from < known.from ? range.from : known.from, to: range.to > known.to ? range.to : known.to } : range,
      );
    },
    byVisitor: () => ranges.entries(),
  };
}
