/** A realistic order, the payload every load scenario sends; `note` pads it to a wanted size. */
export function orderPayload(note = ''): Record<string, unknown> {
  return {
    order_id: 'ord_2024_000184467',
    customer: { id: 'cus_88213', country: 'DE', tier: 'gold' },
    items: [
      { sku: 'SKU-10023', quantity: 2, unit_price_cents: 1999 },
      { sku: 'SKU-20417', quantity: 1, unit_price_cents: 4950 },
    ],
    total_cents: 8948,
    currency: 'EUR',
    placed_at: '2024-05-17T09:21:44.120Z',
    note,
  };
}

/**
 * The POST /ingest body: the order as a partner item, padded to exactly `targetBytes` bytes of JSON
 * so that Intake and the baseline parse the very same input.
 */
export function ingestBody(targetBytes = 400): string {
  const event = (note: string) => ({ partner_id: 'partner123', event_type: 'order_created', payload: orderPayload(note) });
  const unpadded = JSON.stringify(event('')).length;
  if (unpadded > targetBytes) throw new Error(`the bench body is ${unpadded} bytes, over the ${targetBytes} asked for`);
  return JSON.stringify(event('x'.repeat(targetBytes - unpadded)));
}

/** An application event (POST /api/ingest/{app_id} and the batch endpoint): the order with a `total`. */
export function appEvent(total = 55): { event_type: string; payload: Record<string, unknown> } {
  return { event_type: 'order_created', payload: { total, ...orderPayload() } };
}

/** A tracking event; the load replaces `[<id>]` with a fresh UUID per request (see autocannon-unique-ids.mjs). */
export function trackingEvent(campaignId = 'c1', visitorId = 'v[<id>]'): string {
  return JSON.stringify({
    partner_id: 'p1',
    campaign_id: campaignId,
    visitor_id: visitorId,
    interaction_type: 'click',
    source_url: 'https://a.example/x',
    destination_url: 'https://b.example/y',
  });
}
