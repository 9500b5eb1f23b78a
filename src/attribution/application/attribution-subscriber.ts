import type { DataIngested } from '../../shared/contracts/data-events.js';
import type { Subscriber } from '../../shared/subscriptions/subscriber.js';
import {
  attributionFromMessage,
  DEFAULT_CONVERSION_EVENTS,
  mayAttribute,
  TIE_LIMITS,
  type ConversionEvents,
  type IdentityLink,
} from '../domain/analytics-message.js';
import { attributeConversions, conversionsReachedBy, lookbackWindowOf, type Credit, type TimeRange } from '../domain/attribution-models.js';
import { conversionFromRecorded, type Conversion } from '../domain/conversion.js';
import { touchFromPublished, TRACKING_EVENT_RECORDED, type Touch } from '../domain/touch.js';
import { visitorKey, type Instant, type Visitor } from '../domain/values.js';
import type { AttributionLedger, AttributionLedgerFor } from './ports.js';

export interface AttributionSubscriberDeps {
  readonly ledger: AttributionLedgerFor;
  readonly lookbackMs: number;
  /** Tracking-API track events that are conversions, with the property holding their value. */
  readonly conversionEvents?: ConversionEvents;
  /** Referring hosts that make no touch (ATTRIBUTION_IGNORED_REFERRERS). */
  readonly ignoredReferrers?: readonly string[];
}

export const CONVERSION_RECORDED = 'ConversionRecorded';
const DATA_INGESTED = 'DataIngested';

/**
 * Keeps attribution from tracking events and conversions.
 *
 * Touches and conversions are kept as facts, deduplicated on their ids, so a redelivered event
 * changes nothing. Totals per campaign and partner only add up, so arrival order cannot change them.
 * Credits depend on order, so they are never updated incrementally: each conversion a new fact can
 * reach is credited again from every touch in its window, ordered by `occurred_at`. A touch that
 * arrives after its conversion therefore corrects the conversion's credits, and a replay, whatever
 * its batches, ends in the same tables. Links between an SDK user and the anonymous ids known to be
 * them are facts too: a user's conversions are credited from those ids' touches as well (and from the
 * ids tied to those, along a chain of ties), and a link arriving after them re-credits them.
 */
export function attributionSubscriber({
  ledger: ledgerFor,
  lookbackMs,
  conversionEvents = DEFAULT_CONVERSION_EVENTS,
  ignoredReferrers = [],
}: AttributionSubscriberDeps): Subscriber {
  return {
    name: 'attribution',
    // DataIngested: the tracking API's page and track messages (channel analytics_api) are touches and conversions too.
    handles: [TRACKING_EVENT_RECORDED, CONVERSION_RECORDED, DATA_INGESTED],
    wants: (event) => event.type !== DATA_INGESTED || mayAttribute(event.data as DataIngested['data']),
    async handle(events, tx) {
      const ledger = ledgerFor(tx.db);
      const touches: Touch[] = [];
      const conversions: Conversion[] = [];
      const links: IdentityLink[] = [];
      for (const event of events) {
        if (event.type === TRACKING_EVENT_RECORDED) {
          touches.push(touchFromPublished(event.data, event.metadata));
        } else if (event.type === CONVERSION_RECORDED) {
          conversions.push(conversionFromRecorded(event.data));
        } else if (event.type === DATA_INGESTED) {
          const { touch, conversion, link } = attributionFromMessage(
            event.data as DataIngested['data'],
            conversionEvents,
            ignoredReferrers,
          );
          if (touch) touches.push(touch);
          if (conversion) conversions.push(conversion);
          if (link) links.push(link);
        }
      }
      // Facts first, for the whole batch, then credits: totals only add up and credits are recomputed
      // from the stored facts, so the order of events within a batch cannot change the result.
      const stale = staleConversions();
      // A user's every message carries the same tie: each is offered once a batch.
      const newLinks = await ledger.addLinks([...new Map(links.map((link) => [linkKey(link), link])).values()], TIE_LIMITS);
      const newTouches = await ledger.addTouches(touches);
      await ledger.countTouches(newTouches);
      // An SDK user's anonymous ids are theirs: a touch of one reaches the user's conversions too, and
      // those of every user above it in a chain of ties (U1's touch, after alias(U2 <- U1) and
      // alias(U3 <- U2), reaches U2's and U3's). Each visitor's users are read once a batch, however
      // many of its touches it holds.
      const usersOf = new Map<string, Visitor[]>();
      for (const touch of newTouches) {
        const reached = conversionsReachedBy(touch, lookbackMs);
        stale.add(touch.visitor, reached);
        if (touch.visitor.appId === null) continue;
        const key = visitorKey(touch.visitor);
        let users = usersOf.get(key);
        if (!users) usersOf.set(key, (users = await ledger.usersOf(touch.visitor)));
        for (const user of users) stale.add(user, reached);
      }
      // The batch's new conversions, by visitor: each is credited, whatever the cap on re-crediting.
      const fresh = new Map<string, Conversion[]>();
      for (const conversion of await ledger.addConversions(conversions)) {
        stale.add(conversion.visitor, { from: conversion.occurredAt, to: conversion.occurredAt });
        const key = visitorKey(conversion.visitor);
        fresh.set(key, [...(fresh.get(key) ?? []), conversion]);
      }
      // A new link brings every touch the anonymous id and the ids below it ever had to the conversions
      // they reach of the user and of every user above it: with the chain joined in the middle, the
      // touches of its lower half now count for its upper half, whichever link of it came last.
      for (const link of newLinks) {
        const span = await ledger.touchSpan([link.anonymous, ...(await ledger.anonymousIdsOf(link.anonymous))]);
        if (!span) continue;
        const reached = { from: span.from, to: conversionsReachedBy({ occurredAt: span.to }, lookbackMs).to };
        for (const user of [link.user, ...(await ledger.usersOf(link.user))]) stale.add(user, reached);
      }
      const credited: Array<{ conversionId: string; credits: Credit[] }> = [];
      const budget = { rows: MAX_CREDIT_ROWS_RECREDITED };
      for (const { visitor, range } of stale.byVisitor()) {
        credited.push(...(await recredit(ledger, visitor, range, lookbackMs, fresh.get(visitorKey(visitor)) ?? [], budget)));
      }
      await ledger.replaceCredits(credited);
    },
    async reset(tx) {
      await ledgerFor(tx.db).clear();
    },
  };
}

/**
 * Conversions of one visitor a batch credits again, the earliest of its range. A late touch reaches
 * every conversion of the 30 days after it: an id shared by a whole backend (thousands of orders)
 * would have them all rewritten at once. Beyond this many, the later ones keep their credits (the
 * batch's own new conversions are credited all the same: they have none to keep).
 */
export const MAX_CONVERSIONS_RECREDITED = 1000;

/**
 * Credit rows a batch writes again for conversions it did not bring: a conversion credited from 50
 * touches of 50 campaigns has about a hundred, and a thousand of them rewritten held every writer for
 * 1.5 s. Past the budget, the later conversions keep their credits; new ones are credited regardless.
 */
export const MAX_CREDIT_ROWS_RECREDITED = 20_000;

const linkKey = (link: IdentityLink) => JSON.stringify([visitorKey(link.anonymous), visitorKey(link.user)]);

/** Every conversion of the visitor in the range (and the batch's new ones), credited again from all the touches in their windows. */
async function recredit(
  ledger: AttributionLedger,
  visitor: Visitor,
  range: TimeRange,
  lookbackMs: number,
  fresh: readonly Conversion[],
  budget: { rows: number },
): Promise<Array<{ conversionId: string; credits: Credit[] }>> {
  // The visitor's own touches count, and an SDK user's also those of the anonymous ids known to be them,
  // along chains of ties.
  const identities = visitor.appId === null ? [visitor] : [visitor, ...(await ledger.anonymousIdsOf(visitor))];
  // Credits come only from touches in a conversion's window, and touches are never taken back: with
  // none in any window of the range, its conversions have no credits and never had, so none are read.
  // Most conversions of tracking-API traffic (no campaign, no referrer) end here.
  if (!(await ledger.hasTouches(identities, { from: lookbackWindowOf({ occurredAt: range.from }, lookbackMs).from, to: range.to })))
    return [];
  const earliest = await ledger.conversionsOf(visitor, range, MAX_CONVERSIONS_RECREDITED);
  const taken = new Set(earliest.map((conversion) => conversion.id));
  const conversions = [...earliest, ...fresh.filter((conversion) => !taken.has(conversion.id))].sort(byOccurrence);
  const first = conversions[0];
  const last = conversions.at(-1);
  if (!first || !last) return [];
  // One read covers every window: from the earliest window's start to the latest conversion.
  const touches = await ledger.touchesOf(identities, { from: lookbackWindowOf(first, lookbackMs).from, to: last.occurredAt });
  const isFresh = new Set(fresh.map((conversion) => conversion.id));
  let spent = false;
  return attributeConversions(conversions, touches, lookbackMs).filter(({ conversionId, credits }) => {
    if (isFresh.has(conversionId)) return true;
    // Earliest first: once one is over the budget, every later one keeps its credits.
    spent ||= credits.length > budget.rows;
    if (spent) return false;
    budget.rows -= credits.length;
    return true;
  });
}

const byOccurrence = (a: Conversion, b: Conversion) =>
  a.occurredAt < b.occurredAt ? -1 : a.occurredAt > b.occurredAt ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

/**
 * The conversions a batch may have changed, per visitor, as one time range covering them all:
 * a range a little wider than needed only re-credits a conversion to the same result.
 */
function staleConversions() {
  const ranges = new Map<string, { visitor: Visitor; range: { from: Instant; to: Instant } }>();
  return {
    add(visitor: Visitor, range: TimeRange) {
      const key = visitorKey(visitor);
      const known = ranges.get(key)?.range;
      ranges.set(key, {
        visitor,
        range: known ? { from: range.from < known.from ? range.from : known.from, to: range.to > known.to ? range.to : known.to } : range,
      });
    },
    byVisitor: () => ranges.values(),
  };
}
