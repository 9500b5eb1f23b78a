import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import { orderingKeyOf, parseOrderingKey } from './ordering-key.js';

describe('ordering keys', () => {
  it('accepts paths that can hold a value', () => {
    for (const path of ['payload.customer_id', 'payload.order.customer.id', 'metadata.key_id', 'event_type', 'app_id'])
      expect(parseOrderingKey(path)).toBe(path);
    expect(parseOrderingKey(null)).toBeNull();
    expect(parseOrderingKey(undefined)).toBeNull();
  });

  it.each([
    'customer_id',
    'payload',
    'payload.',
    'payload..x',
    'payload.__proto__',
    'payload.a.constructor',
    'metadata.nothing',
    'metadata',
    'event_type.x',
    '',
    42,
    'x'.repeat(300),
  ])('refuses %j', (path) => {
    expect(() => parseOrderingKey(path)).toThrow(ValidationError);
  });

  it('reads a scalar from the document, typed so 1 and "1" are different keys', () => {
    const doc = { event_type: 'o', payload: { c: { id: 'A' }, n: 1, s: '1', list: [1], nil: null } };
    expect(orderingKeyOf('payload.c.id', doc)).toBe('s:A');
    expect(orderingKeyOf('payload.n', doc)).not.toBe(orderingKeyOf('payload.s', doc));
    expect(orderingKeyOf('event_type', doc)).toBe('s:o');
    for (const missing of ['payload.c', 'payload.list', 'payload.nil', 'payload.absent.x', 'payload.toString'])
      expect(orderingKeyOf(missing, doc)).toBeUndefined();
  });

  it('keeps a value past 256 bytes as its digest, equal for equal values and different for different ones', () => {
    const key = (id: string) => orderingKeyOf('payload.id', { payload: { id } });
    expect(key('é'.repeat(127))).toBe(`s:${'é'.repeat(127)}`);
    expect(key('é'.repeat(128))).toMatch(/^h:[\w-]{43}$/);
    expect(key('x'.repeat(5_000))).toBe(key('x'.repeat(5_000)));
    expect(key('x'.repeat(5_000))).not.toBe(key(`${'x'.repeat(4_999)}y`));
  });
});
