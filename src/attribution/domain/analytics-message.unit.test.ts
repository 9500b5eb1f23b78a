import { describe, expect, it } from 'vitest';
import type { DataIngested } from '../../shared/contracts/data-events.js';
import {
  attributionFromMessage,
  DEFAULT_CONVERSION_EVENTS,
  mayAttribute,
  parseConversionEvents,
  parseIgnoredReferrers,
} from './analytics-message.js';

const item = (payload: object, channel: DataIngested['data']['metadata']['channel'] = 'analytics_api'): DataIngested['data'] => ({
  item_id: 'item-1',
  partner_id: 'shop',
  event_type: 'x',
  payload: payload as DataIngested['data']['payload'],
  received_at: '2026-11-24T10:00:00.000Z',
  metadata: { channel, received_at: '2026-11-24T10:00:00.000Z', ip: null, user_agent: null, correlation_id: null, key_id: null },
});

describe('attribution from tracking-API messages', () => {
  it('looks at page and track messages of the tracking API, and at messages tying an anonymous id to a user', () => {
    expect(mayAttribute(item({ type: 'page' }))).toBe(true);
    expect(mayAttribute(item({ type: 'track' }))).toBe(true);
    expect(mayAttribute(item({ type: 'identify', userId: 'u1' }))).toBe(false);
    expect(mayAttribute(item({ type: 'identify', userId: 'u1', anonymousId: 'a1' }))).toBe(true);
    expect(mayAttribute(item({ type: 'alias', userId: 'u1', previousId: 'a1' }))).toBe(true);
    expect(mayAttribute(item({ type: 'track' }, 'partner_api'))).toBe(false);
  });

  it('ties the anonymous id a message carries, or the previous id an alias names, to its user of the application', () => {
    const link = { anonymous: { appId: 'shop', id: 'a1' }, user: { appId: 'shop', id: 'u1' } };
    expect(attributionFromMessage(item({ type: 'identify', userId: 'u1', anonymousId: 'a1' }), DEFAULT_CONVERSION_EVENTS)).toEqual({
      link,
    });
    expect(attributionFromMessage(item({ type: 'alias', userId: 'u1', previousId: 'a1' }), DEFAULT_CONVERSION_EVENTS)).toEqual({ link });
    const { conversion, link: tied } = attributionFromMessage(
      item({ type: 'track', event: 'Order Completed', userId: 'u1', anonymousId: 'a1', properties: { revenue: 10 } }),
      DEFAULT_CONVERSION_EVENTS,
    );
    expect(conversion?.visitor).toEqual({ appId: 'shop', id: 'u1' });
    expect(tied).toEqual(link);
    // Nothing to tie: one id alone, the same id twice, or an id no visitor can have.
    expect(attributionFromMessage(item({ type: 'identify', userId: 'u1', anonymousId: 'u1' }), DEFAULT_CONVERSION_EVENTS)).toEqual({});
    expect(attributionFromMessage(item({ type: 'track', event: 'x', anonymousId: 'a1' }), DEFAULT_CONVERSION_EVENTS).link).toBeUndefined();
    expect(
      attributionFromMessage(item({ type: 'identify', userId: 'u1', anonymousId: 'x'.repeat(1000) }), DEFAULT_CONVERSION_EVENTS),
    ).toEqual({});
  });

  it('takes a referrer from another site as a touch, but not the site’s own hosts nor the hosts it is told to ignore', () => {
    const visit = (referrer: string, url = 'https://shop.example/cart') =>
      item({ type: 'page', userId: 'u1', context: { page: { url, referrer } } });
    const partnerOf = (referrer: string, url?: string, ignored: string[] = []) =>
      attributionFromMessage(visit(referrer, url), DEFAULT_CONVERSION_EVENTS, ignored).touch?.partnerId;
    expect(partnerOf('https://blog.example.org/post')).toBe('blog.example.org');
    expect(partnerOf('https://www.shop.example/product')).toBeUndefined();
    expect(partnerOf('https://shop.example/product', 'https://www.shop.example/cart')).toBeUndefined();
    expect(partnerOf('https://checkout.shop.example/pay')).toBeUndefined();
    // A host that merely ends with the site's name is another site.
    expect(partnerOf('https://notshop.example/')).toBe('notshop.example');
    expect(partnerOf('https://www.paypal.com/checkoutnow', undefined, ['paypal.com'])).toBeUndefined();
    expect(partnerOf('https://www.paypal.com/checkoutnow')).toBe('www.paypal.com');
    expect(parseIgnoredReferrers(' PayPal.com , checkout.stripe.com ')).toEqual(['paypal.com', 'checkout.stripe.com']);
    expect(() => parseIgnoredReferrers('https://paypal.com')).toThrow(/not a host name/);
  });

  it('keeps ids as sent, spaces included, as profiles do: " u1 " is another visitor than "u1"', () => {
    const { conversion, link } = attributionFromMessage(
      item({ type: 'track', event: 'Order Completed', userId: ' u1 ', anonymousId: 'a1 ', properties: { revenue: 10 } }),
      DEFAULT_CONVERSION_EVENTS,
    );
    expect(conversion?.visitor).toEqual({ appId: 'shop', id: ' u1 ' });
    expect(link).toEqual({ anonymous: { appId: 'shop', id: 'a1 ' }, user: { appId: 'shop', id: ' u1 ' } });
    expect(attributionFromMessage(item({ type: 'identify', userId: '  ', anonymousId: 'a1' }), DEFAULT_CONVERSION_EVENTS)).toEqual({});
  });

  it('keeps an order a conversion when its campaign names no valid id, and reads its name as stored (trimmed)', () => {
    for (const name of ['x'.repeat(300), 'spring\tsale']) {
      const { conversion, touch } = attributionFromMessage(
        item({
          type: 'track',
          event: 'Order Completed',
          userId: 'u1',
          properties: { revenue: 50 },
          context: { campaign: { name, source: 'google' } },
        }),
        DEFAULT_CONVERSION_EVENTS,
      );
      expect(conversion?.value).toBe(50);
      expect(touch).toBeUndefined();
    }
    const { conversion } = attributionFromMessage(
      item({ type: 'track', event: ' Order Completed ', userId: 'u1', properties: { revenue: 5 } }),
      DEFAULT_CONVERSION_EVENTS,
    );
    expect(conversion?.value).toBe(5);
  });

  it('reads a utm campaign as a touch of the application-scoped visitor', () => {
    const { touch } = attributionFromMessage(
      item({
        type: 'track',
        event: 'Clicked',
        anonymousId: 'a',
        timestamp: '2026-11-24T09:00:00.000Z',
        context: { campaign: { utm_source: 'ads', utm_campaign: 'winter' } },
      }),
      DEFAULT_CONVERSION_EVENTS,
    );
    expect(touch).toEqual({
      trackingEventId: 'item-1',
      visitor: { appId: 'shop', id: 'a' },
      partnerId: 'ads',
      campaignId: 'winter',
      interactionType: 'engagement',
      occurredAt: '2026-11-24T09:00:00.000Z',
    });
  });

  it('counts a configured event with a numeric value as a conversion, and nothing else', () => {
    const order = (properties: object) =>
      attributionFromMessage(item({ type: 'track', event: 'Order Completed', userId: 'u', properties }), DEFAULT_CONVERSION_EVENTS)
        .conversion;
    expect(order({ revenue: 12.5 })).toMatchObject({ id: 'item-1', visitor: { appId: 'shop', id: 'u' }, value: 12.5 });
    expect(order({ total: 12.5 })).toBeUndefined();
    expect(order({ revenue: -3 })).toBeUndefined();
    expect(order({ revenue: 1.7e308 })).toBeUndefined();
    // Out of range it is no conversion, yet still the touch its campaign makes.
    const campaign = { campaign: { utm_source: 'ads', utm_campaign: 'winter' } };
    const hugeOrder = item({ type: 'track', event: 'Order Completed', userId: 'u', properties: { revenue: 1e13 }, context: campaign });
    expect(attributionFromMessage(hugeOrder, DEFAULT_CONVERSION_EVENTS)).toEqual({
      touch: expect.objectContaining({ campaignId: 'winter' }),
    });
    const signup = item({ type: 'track', event: 'Signed Up', userId: 'u', properties: { value: 1 } });
    expect(attributionFromMessage(signup, DEFAULT_CONVERSION_EVENTS)).toEqual({});
    expect(attributionFromMessage(signup, parseConversionEvents('Signed Up=value')).conversion?.value).toBe(1);
    // A name Object.prototype holds is no configured event.
    const forged = item({ type: 'track', event: 'valueOf', userId: 'u', properties: { [String(Object.prototype.valueOf)]: 42 } });
    expect(attributionFromMessage(forged, DEFAULT_CONVERSION_EVENTS).conversion).toBeUndefined();
  });

  it("keeps the application and the user apart, whatever ':' either holds", () => {
    const visitorOf = (appId: string, userId: string) =>
      attributionFromMessage(
        { ...item({ type: 'track', event: 'Order Completed', userId, properties: { revenue: 1 } }), partner_id: appId },
        DEFAULT_CONVERSION_EVENTS,
      ).conversion?.visitor;
    expect(visitorOf('a:b', 'c')).toEqual({ appId: 'a:b', id: 'c' });
    expect(visitorOf('a', 'b:c')).toEqual({ appId: 'a', id: 'b:c' });
  });

  it('ignores items that did not come through the tracking API', () => {
    expect(
      attributionFromMessage(
        item({ type: 'page', userId: 'u', context: { campaign: { name: 'c', source: 's' } } }, 'application_api'),
        DEFAULT_CONVERSION_EVENTS,
      ),
    ).toEqual({});
  });

  it('refuses a malformed list of conversion events', () => {
    expect(parseConversionEvents('Order Completed=revenue, Signed Up = value')).toEqual({
      'Order Completed': 'revenue',
      'Signed Up': 'value',
    });
    expect(() => parseConversionEvents('Order Completed')).toThrow(/EVENT NAME=value property/);
    expect(() => parseConversionEvents(' , ')).toThrow(/names no event/);
  });
});
