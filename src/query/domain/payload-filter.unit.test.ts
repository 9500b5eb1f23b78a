import { describe, expect, it } from 'vitest';
import { parsePayloadFilter } from './payload-filter.js';

describe('payload filters from a query string', () => {
  it('reads payload.* parameters as paths with the values that count as equal', () => {
    expect(parsePayloadFilter({ limit: '10', 'payload.order_id': 'A17', 'payload.customer.tier': '2', 'payload.vip': 'true' })).toEqual([
      { path: ['order_id'], values: ['A17'] },
      { path: ['customer', 'tier'], values: ['2', 2] },
      { path: ['vip'], values: ['true', true] },
    ]);
    expect(parsePayloadFilter({ 'payload.x': '007' })).toEqual([{ path: ['x'], values: ['007'] }]);
  });

  it.each([
    [{ 'payload.': 'x' }],
    [{ 'payload.a..b': 'x' }],
    [{ "payload.a'b": 'x' }],
    [{ 'payload.a"b': 'x' }],
    [{ 'payload.$.a': 'x' }],
    [{ 'payload.a b': 'x' }],
    [{ 'payload.a.b.c.d.e.f': 'x' }],
    [{ 'payload.a': ['x', 'y'] }],
    [{ 'payload.a': 'x'.repeat(257) }],
    [Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`payload.k${i}`, 'v']))],
  ])('refuses %j', (query) => {
    expect(() => parsePayloadFilter(query)).toThrow(expect.objectContaining({ code: 'query.invalid-payload-filter' }));
  });
});
