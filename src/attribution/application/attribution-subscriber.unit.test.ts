import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../shared/events.js';
import type { StoreTransaction } from '../../shared/event-store/event-store.js';
import type { Conversion } from '../domain/conversion.js';
import type { Credit } from '../domain/attribution-models.js';
import type { Touch } from '../domain/touch.js';
import { sameVisitor } from '../domain/values.js';
import { attributionSubscriber, CONVERSION_RECORDED } from './attribution-subscriber.js';
import type { AttributionLedger } from './ports.js';

const inRange = (at: string, range: { from: string; to: string }) => at >= range.from && at <= range.to;

/** The ledger in memory, counting the reads of conversions. */
function memoryLedger() {
  const touches: Touch[] = [];
  const conversions: Conversion[] = [];
  const credits = new Map<string, readonly Credit[]>();
  const reads = { conversions: 0 };
  const ledger: AttributionLedger = {
    addTouches: async (added) => (touches.push(...added), [...added]),
    addConversions: async (added) => (conversions.push(...added), [...added]),
    countTouches: async () => undefined,
    conversionsOf: async (visitor, range) => {
      reads.conversions++;
      return conversions.filter((c) => sameVisitor(c.visitor, visitor) && inRange(c.occurredAt, range));
    },
    touchesOf: async (visitor, range) => touches.filter((t) => sameVisitor(t.visitor, visitor) && inRange(t.occurredAt, range)),
    hasTouches: async (visitor, range) => touches.some((t) => sameVisitor(t.visitor, visitor) && inRange(t.occurredAt, range)),
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
const touch = (id: string, at: string) =>
  event('TrackingEventRecorded', {
    tracking_event_id: id,
    visitor_id: 'v1',
    partner_id: 'p1',
    campaign_id: 'c1',
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
});
