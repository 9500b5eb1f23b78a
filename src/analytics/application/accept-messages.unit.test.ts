import { describe, expect, it } from 'vitest';
import { fixedClock } from '../../shared/clock.js';
import { acceptMessages } from './accept-messages.js';
import type { EventToIngest, IngestEvents, IngestReceipt } from './ports.js';

/** Ingestion as the port sees it, in memory: refuses event types with a "!" and remembers message ids. */
function inMemoryIngestion() {
  const stored: EventToIngest[] = [];
  const seen = new Map<string, string>();
  const ingest: IngestEvents = async (events) =>
    events.map((event, index): IngestReceipt => {
      if (event.command.eventType.includes('!'))
        return {
          index,
          status: 'rejected',
          code: 'routing.rules-too-costly',
          reason: 'event_type is not allowed',
          errors: [{ path: 'event_type', message: 'is not allowed' }],
        };
      const first = event.messageId !== undefined ? seen.get(event.messageId) : undefined;
      if (first) return { index, status: 'duplicate', eventId: first };
      const eventId = `e${stored.push(event)}`;
      if (event.messageId !== undefined) seen.set(event.messageId, eventId);
      return { index, status: 'accepted', eventId };
    });
  return { stored, ingest };
}

describe('accepting tracking-API messages', () => {
  it('answers a receipt per message in order, whichever side refused it', async () => {
    const ingestion = inMemoryIngestion();
    const accept = acceptMessages({ ingest: ingestion.ingest, clock: fixedClock('2026-11-24T10:00:00.000Z') });
    const receipts = await accept({
      appId: 'shop',
      messages: [
        { type: 'track', event: 'Wow!', userId: 'u', messageId: 'm1' },
        { type: 'identify', messageId: 'm2' },
        { type: 'track', event: 'Order Completed', userId: 'u', messageId: 'm3' },
        { type: 'track', event: 'Order Completed', userId: 'u', messageId: 'm3' },
        // A number is an id too, taken as text, refused or not.
        { type: 'identify', messageId: 46 },
        { type: 'track', event: 'Order Completed', userId: 'u', messageId: 47 },
      ],
      request: { ip: '192.0.2.4', keyId: 'k1' },
    });
    expect(receipts).toEqual([
      {
        index: 0,
        status: 'rejected',
        // Ingestion's own code: a message the rules would cost too much to route answers 422, as /api/ingest does.
        code: 'routing.rules-too-costly',
        reason: 'event_type is not allowed',
        errors: [{ path: 'event_type', message: 'is not allowed' }],
        messageId: 'm1',
      },
      expect.objectContaining({ index: 1, status: 'rejected', code: 'analytics.missing-identity', messageId: 'm2' }),
      { index: 2, status: 'accepted', eventId: 'e1', messageId: 'm3' },
      { index: 3, status: 'duplicate', eventId: 'e1', messageId: 'm3' },
      expect.objectContaining({ index: 4, status: 'rejected', code: 'analytics.missing-identity', messageId: '46' }),
      { index: 5, status: 'accepted', eventId: 'e2', messageId: '47' },
    ]);
    expect(ingestion.stored).toHaveLength(2);
    expect(ingestion.stored[0]?.command).toMatchObject({
      partnerId: 'shop',
      eventType: 'Order Completed',
      channel: 'analytics_api',
      request: { ip: '192.0.2.4', keyId: 'k1' },
      // The stored item arrives when the message says it was received: one instant, not two readings.
      receivedAt: new Date('2026-11-24T10:00:00.000Z'),
      payload: expect.objectContaining({ receivedAt: '2026-11-24T10:00:00.000Z' }),
    });
  });

  it('does not call ingestion when every message is refused', async () => {
    let calls = 0;
    const accept = acceptMessages({ ingest: async () => (calls++, []), clock: fixedClock('2026-11-24T10:00:00.000Z') });
    const receipts = await accept({ appId: 'shop', messages: [{ type: 'nope' }], request: {} });
    expect(receipts.map((r) => r.status)).toEqual(['rejected']);
    expect(calls).toBe(0);
  });

  it('lets other requests in while it checks a large batch, before anything is stored', async () => {
    const ingestion = inMemoryIngestion();
    let otherRan = false;
    let otherRanBeforeStoring: boolean | undefined;
    const ingest: IngestEvents = async (events) => {
      otherRanBeforeStoring = otherRan;
      return ingestion.ingest(events);
    };
    const accept = acceptMessages({ ingest, clock: fixedClock('2026-11-24T10:00:00.000Z'), sliceMs: 0 });
    const messages = Array.from({ length: 3 }, (_, i) => ({ type: 'track', event: 'E', userId: 'u', messageId: `m${i}` }));
    const accepted = accept({ appId: 'shop', messages, request: { ip: '192.0.2.4', keyId: 'k1' } });
    setImmediate(() => (otherRan = true));
    expect((await accepted).map((receipt) => receipt.status)).toEqual(['accepted', 'accepted', 'accepted']);
    expect(otherRanBeforeStoring).toBe(true);
  });
});
