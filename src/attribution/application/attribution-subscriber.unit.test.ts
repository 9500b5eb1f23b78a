import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../shared/events.js';
import type { StoreTransaction } from '../../shared/event-store/event-store.js';
import type { Conversion } from '../domain/conversion.js';
import type { Credit } from '../domain/attribution-models.js';
import { CHAIN_LIMITS, type IdentityLink } from '../domain/analytics-message.js';
import { compareTouches, type Touch } from '../domain/touch.js';
import { sameVisitor, type Visitor } from '../domain/values.js';
import {
  attributionSubscriber,
  CONVERSION_RECORDED,
  MAX_CONVERSIONS_RECREDITED,
  MAX_CREDIT_ROWS_RECREDITED,
} from './attribution-subscriber.js';
import type { AttributionLedger } from './ports.js';

const inRange = (at: string, range: { from: string; to: string }) => at >= range.from && at <= range.to;

/** The ledger in memory, counting the reads of conversions. */
function memoryLedger() {
  const touches: Touch[] = [];
  const conversions: Conversion[] = [];
  const links: IdentityLink[] = [];
  const credits = new Map<string, readonly Credit[]>();
  const reads = { conversions: 0, users: 0 };
  const ofAny = (visitors: readonly Visitor[]) => (t: Touch) => visitors.some((visitor) => sameVisitor(t.visitor, visitor));
  /** The ids tied to `start` a step at a time, within CHAIN_LIMITS, as the SQL ledger walks them. */
  const walk = (start: Visitor, from: 'user' | 'anonymous', to: 'user' | 'anonymous'): Visitor[] => {
    const found: Visitor[] = [];
    const seen = (visitor: Visitor) => sameVisitor(visitor, start) || found.some((other) => sameVisitor(other, visitor));
    let step = [start];
    for (let steps = 0; steps < CHAIN_LIMITS.steps && step.length > 0; steps++) {
      const next = links.filter((link) => step.some((visitor) => sameVisitor(link[from], visitor))).map((link) => link[to]);
      step = next.filter((visitor, i) => !seen(visitor) && next.findIndex((other) => sameVisitor(other, visitor)) === i);
      found.push(...step);
    }
    return found.slice(0, CHAIN_LIMITS.ids);
  };
  const ledger: AttributionLedger = {
    addTouches: async (added) => (touches.push(...added), [...added]),
    addConversions: async (added) => (conversions.push(...added), [...added]),
    addLinks: async (added, limits) => {
      const fresh: IdentityLink[] = [];
      for (const link of added) {
        const known = (l: IdentityLink) => sameVisitor(l.anonymous, link.anonymous) && sameVisitor(l.user, link.user);
        if (links.some(known)) continue;
        if (links.filter((l) => sameVisitor(l.user, link.user)).length >= limits.anonymousIdsPerUser) continue;
        if (links.filter((l) => sameVisitor(l.anonymous, link.anonymous)).length >= limits.usersPerAnonymousId) continue;
        links.push(link);
        fresh.push(link);
      }
      return fresh;
    },
    anonymousIdsOf: async (user) => walk(user, 'user', 'anonymous'),
    usersOf: async (anonymous) => {
      reads.users++;
      return walk(anonymous, 'anonymous', 'user');
    },
    touchSpan: async (visitors) => {
      const times = touches.filter(ofAny(visitors)).map((t) => t.occurredAt);
      return times.length === 0
        ? undefined
        : { from: times.reduce((a, b) => (a < b ? a : b)), to: times.reduce((a, b) => (a > b ? a : b)) };
    },
    countTouches: async () => undefined,
    conversionsOf: async (visitor, range, limit) => {
      reads.conversions++;
      return conversions
        .filter((c) => sameVisitor(c.visitor, visitor) && inRange(c.occurredAt, range))
        .sort((a, b) => (a.occurredAt < b.occurredAt ? -1 : a.occurredAt > b.occurredAt ? 1 : 0))
        .slice(0, limit);
    },
    touchesOf: async (visitors, range) => touches.filter((t) => ofAny(visitors)(t) && inRange(t.occurredAt, range)).sort(compareTouches),
    hasTouches: async (visitors, range) => touches.some((t) => ofAny(visitors)(t) && inRange(t.occurredAt, range)),
    replaceCredits: async (credited) => {
      for (const { conversionId, credits: given } of credited) credits.set(conversionId, given);
    },
    clear: async () => undefined,
  };
  return { ledger, credits, reads };
}

let position = 0;
const event = (type: string, data: Record<string, unknown>): RecordedEvent => ({
  eventId: `e-${++position}`,
  position,
  streamId: `s-${position}`,
  streamVersion: 1,
  type,
  data,
  metadata: {},
  recordedAt: '2026-12-04T12:00:00.000Z',
});
const conversion = (id: string, at: string) =>
  event(CONVERSION_RECORDED, { conversion_id: id, visitor_id: 'v1', value: 100, occurred_at: at, recorded_at: at });
const touch = (id: string, at: string, campaign = 'c1') =>
  event('TrackingEventRecorded', {
    tracking_event_id: id,
    visitor_id: 'v1',
    partner_id: 'p1',
    campaign_id: campaign,
    interaction_type: 'click',
    occurred_at: at,
  });

describe('the attribution subscriber', () => {
  it('reads no conversions for a visitor with no touch in their windows, and credits them once a touch arrives', async () => {
    const { ledger, credits, reads } = memoryLedger();
    const subscriber = attributionSubscriber({ ledger: () => ledger, lookbackMs: 7 * 24 * 3600 * 1000 });
    const tx = { db: {} } as unknown as StoreTransaction;
    await subscriber.handle([conversion('k1', '2026-12-04T10:00:00.000Z')], tx);
    expect(reads.conversions).toBe(0);
    expect(credits.size).toBe(0);

    // A touch from before the conversion, arriving late, corrects it.
    await subscriber.handle([touch('t1', '2026-12-03T10:00:00.000Z')], tx);
    expect(reads.conversions).toBe(1);
    expect(credits.get('k1')?.find((c) => c.model === 'last_touch')).toMatchObject({ partnerId: 'p1', campaignId: 'c1', share: 1 });
  });

  it('credits again at most MAX_CONVERSIONS_RECREDITED conversions of a visitor a batch, the earliest a late touch reaches', async () => {
    const { ledger, credits } = memoryLedger();
    const subscriber = attributionSubscriber({ ledger: () => ledger, lookbackMs: 7 * 24 * 3600 * 1000 });
    const tx = { db: {} } as unknown as StoreTransaction;
    const at = (i: number) => new Date(Date.parse('2026-12-04T00:00:00.000Z') + i * 1000).toISOString();
    const firstTouchOf = (id: string) => credits.get(id)?.find((credit) => credit.model === 'first_touch')?.campaignId;
    await subscriber.handle([touch('t0', '2026-12-03T00:00:00.000Z', 'c0')], tx);
    const orders = Array.from({ length: MAX_CONVERSIONS_RECREDITED + 5 }, (_, i) => conversion(`k${i}`, at(i)));
    // New conversions are all credited: they have no credits to keep.
    await subscriber.handle(orders, tx);
    expect(credits.size).toBe(MAX_CONVERSIONS_RECREDITED + 5);
    // A late touch before them all re-credits the earliest ones only; the later keep their credits.
    await subscriber.handle([touch('t-1', '2026-12-02T00:00:00.000Z', 'early')], tx);
    expect(firstTouchOf(`k${MAX_CONVERSIONS_RECREDITED - 1}`)).toBe('early');
    expect(firstTouchOf(`k${MAX_CONVERSIONS_RECREDITED}`)).toBe('c0');
  });

  it('rewrites at most MAX_CREDIT_ROWS_RECREDITED credit rows of earlier conversions a batch, the earliest first', async () => {
    const { ledger, credits } = memoryLedger();
    const subscriber = attributionSubscriber({ ledger: () => ledger, lookbackMs: 7 * 24 * 3600 * 1000 });
    const tx = { db: {} } as unknown as StoreTransaction;
    const at = (i: number) => new Date(Date.parse('2026-12-04T00:00:00.000Z') + i * 1000).toISOString();
    const firstTouchOf = (id: string) => credits.get(id)?.find((credit) => credit.model === 'first_touch')?.campaignId;
    // Fifty campaigns before three hundred orders: each order has 1 + 1 + 50 + 50 credit rows.
    await subscriber.handle(
      Array.from({ length: 50 }, (_, i) => touch(`t${i}`, `2026-12-03T00:00:${String(i).padStart(2, '0')}.000Z`, `c${i}`)),
      tx,
    );
    await subscriber.handle(
      Array.from({ length: 300 }, (_, i) => conversion(`k${i}`, at(i))),
      tx,
    );
    expect(credits.get('k0')).toHaveLength(102);
    await subscriber.handle([touch('late', '2026-12-02T00:00:00.000Z', 'early')], tx);
    const rewritten = Math.floor(MAX_CREDIT_ROWS_RECREDITED / 102);
    expect(firstTouchOf(`k${rewritten - 1}`)).toBe('early');
    expect(firstTouchOf(`k${rewritten}`)).toBe('c0');
  });

  it('credits a new conversion that a late touch of the same batch would crowd past the cap', async () => {
    const { ledger, credits } = memoryLedger();
    const subscriber = attributionSubscriber({ ledger: () => ledger, lookbackMs: 7 * 24 * 3600 * 1000 });
    const tx = { db: {} } as unknown as StoreTransaction;
    const at = (i: number) => new Date(Date.parse('2026-12-04T00:00:00.000Z') + i * 1000).toISOString();
    await subscriber.handle(
      Array.from({ length: MAX_CONVERSIONS_RECREDITED }, (_, i) => conversion(`old${i}`, at(i))),
      tx,
    );
    expect(credits.size).toBe(0);
    await subscriber.handle([touch('late', '2026-12-03T00:00:00.000Z', 'cap-camp'), conversion('new', '2026-12-05T00:00:00.000Z')], tx);
    expect(credits.get('new')?.find((credit) => credit.model === 'last_touch')).toMatchObject({ campaignId: 'cap-camp', value: 100 });
  });

  it('credits a thousand conversions over forty thousand touches, each from the first and latest touches of its own window', async () => {
    const { ledger, credits } = memoryLedger();
    const subscriber = attributionSubscriber({ ledger: () => ledger, lookbackMs: 30 * 24 * 3600 * 1000 });
    const tx = { db: {} } as unknown as StoreTransaction;
    const at = (seconds: number) => new Date(Date.parse('2026-11-20T00:00:00.000Z') + seconds * 1000).toISOString();
    await subscriber.handle(
      Array.from({ length: 40_000 }, (_, i) => touch(`t${i}`, at(i), `k${i % 50}`)),
      tx,
    );
    await subscriber.handle(
      Array.from({ length: 1000 }, (_, i) => conversion(`o${i}`, at(40_000 + i * 600))),
      tx,
    );
    expect(credits.size).toBe(1000);
    // Each conversion's window: its first touch and the 49 latest, whatever the others.
    const linear = credits.get('o999')?.filter((credit) => credit.model === 'linear') ?? [];
    expect(linear.reduce((sum, credit) => sum + credit.share, 0)).toBeCloseTo(1, 9);
    expect(credits.get('o999')?.find((credit) => credit.model === 'first_touch')?.campaignId).toBe('k0');
  });

  describe("an SDK user's anonymous ids", () => {
    const lookbackMs = 7 * 24 * 3600 * 1000;
    const message = (id: string, payload: Record<string, unknown>, app = 'shop') =>
      event('DataIngested', {
        item_id: id,
        partner_id: app,
        event_type: String(payload.event ?? payload.type),
        payload,
        received_at: '2026-12-04T12:00:00.000Z',
        metadata: { channel: 'analytics_api', received_at: '2026-12-04T12:00:00.000Z' },
      });
    const campaignVisit = (id: string, anonymousId: string, at: string, app = 'shop') =>
      message(id, { type: 'page', anonymousId, timestamp: at, context: { campaign: { source: 'ads', name: 'winter' } } }, app);
    const order = (id: string, ids: Record<string, string>, at: string) =>
      message(id, { type: 'track', event: 'Order Completed', ...ids, timestamp: at, properties: { revenue: 80 } });
    const identify = (id: string, userId: string, anonymousId: string) => message(id, { type: 'identify', userId, anonymousId });
    const lastTouch = (credits: Map<string, readonly Credit[]>, conversionId: string) =>
      credits.get(conversionId)?.find((credit) => credit.model === 'last_touch');

    const VISIT = '2026-12-03T10:00:00.000Z';
    const ORDER = '2026-12-04T10:00:00.000Z';
    const tx = { db: {} } as unknown as StoreTransaction;

    it("credits a user's order from the campaign visit made before signing in, in whatever order the facts arrive", async () => {
      const orders = [
        // The order carries both ids, as an SDK sends them after identify.
        [[campaignVisit('m1', 'a1', VISIT)], [order('o1', { userId: 'u1', anonymousId: 'a1' }, ORDER)]],
        // The link arrives last, from an identify sent after the order.
        [[campaignVisit('m1', 'a1', VISIT)], [order('o1', { userId: 'u1' }, ORDER)], [identify('i1', 'u1', 'a1')]],
        // The visit arrives last (a late batch from the browser).
        [[identify('i1', 'u1', 'a1')], [order('o1', { userId: 'u1' }, ORDER)], [campaignVisit('m1', 'a1', VISIT)]],
        // All in one batch, the order first.
        [[order('o1', { userId: 'u1' }, ORDER), identify('i1', 'u1', 'a1'), campaignVisit('m1', 'a1', VISIT)]],
      ];
      for (const batches of orders) {
        const { ledger, credits } = memoryLedger();
        const subscriber = attributionSubscriber({ ledger: () => ledger, lookbackMs });
        for (const batch of batches) await subscriber.handle(batch, tx);
        expect(lastTouch(credits, 'o1')).toMatchObject({ partnerId: 'ads', campaignId: 'winter', share: 1, value: 80 });
      }
    });

    const alias = (id: string, userId: string, previousId: string) => message(id, { type: 'alias', userId, previousId });
    /** Every order of the items. */
    const permutations = <T>(items: readonly T[]): T[][] =>
      items.length <= 1
        ? [[...items]]
        : items.flatMap((item, i) => permutations(items.filter((_, j) => j !== i)).map((rest) => [item, ...rest]));

    it("credits the last user of a chain of aliases from the first one's touch, in every order of arrival", async () => {
      const facts = [
        campaignVisit('m1', 'u1', VISIT),
        order('o1', { userId: 'u3' }, ORDER),
        alias('l1', 'u2', 'u1'),
        alias('l2', 'u3', 'u2'),
      ];
      for (const arrival of permutations(facts)) {
        // One fact a batch, and all of them in one batch.
        for (const batches of [arrival.map((fact) => [fact]), [arrival]]) {
          const { ledger, credits } = memoryLedger();
          const subscriber = attributionSubscriber({ ledger: () => ledger, lookbackMs });
          for (const batch of batches) await subscriber.handle(batch, tx);
          expect(lastTouch(credits, 'o1')).toMatchObject({ partnerId: 'ads', campaignId: 'winter', share: 1, value: 80 });
        }
      }
    });

    it("gives another user who shares an anonymous id with the chain none of the chain's touches", async () => {
      const facts = [
        campaignVisit('m1', 'u1', VISIT),
        alias('l1', 'u2', 'u1'),
        identify('i1', 'u2', 'a1'),
        identify('i2', 'other', 'a1'),
        order('o1', { userId: 'other' }, ORDER),
        order('o2', { userId: 'u2' }, ORDER),
      ];
      for (const arrival of [facts, [...facts].reverse()]) {
        const { ledger, credits } = memoryLedger();
        const subscriber = attributionSubscriber({ ledger: () => ledger, lookbackMs });
        for (const fact of arrival) await subscriber.handle([fact], tx);
        expect(credits.get('o1') ?? []).toEqual([]);
        expect(lastTouch(credits, 'o2')).toMatchObject({ campaignId: 'winter', share: 1 });
      }
    });

    it("reads an anonymous id's users once a batch, however many of its touches the batch holds", async () => {
      const { ledger, credits, reads } = memoryLedger();
      const subscriber = attributionSubscriber({ ledger: () => ledger, lookbackMs });
      await subscriber.handle([identify('i1', 'u1', 'a1'), order('o1', { userId: 'u1' }, ORDER)], tx);
      const visits = ['m1', 'm2', 'm3'].map((id, i) => campaignVisit(id, 'a1', `2026-12-03T1${i}:00:00.000Z`));
      await subscriber.handle(visits, tx);
      expect(reads.users).toBe(1);
      expect(lastTouch(credits, 'o1')).toMatchObject({ campaignId: 'winter', share: 1 });
    });

    it('takes no touch of an anonymous id never tied to the user, nor of the same id in another application', async () => {
      const { ledger, credits } = memoryLedger();
      const subscriber = attributionSubscriber({ ledger: () => ledger, lookbackMs });
      await subscriber.handle([campaignVisit('m1', 'a2', VISIT), campaignVisit('m2', 'a1', VISIT, 'blog')], tx);
      await subscriber.handle([identify('i1', 'u1', 'a1'), order('o1', { userId: 'u1' }, ORDER)], tx);
      expect(credits.get('o1') ?? []).toEqual([]);
    });
  });
});
