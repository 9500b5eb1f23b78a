import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import { changesDestination, destinationKeyOf, parseRule, type RuleFields } from './routing-rule.js';

const rule: RuleFields = {
  app_id: 'shop',
  rule_name: 'hooks',
  event_type_filter: null,
  condition: {},
  destination_type: 'webhook',
  destination_config: { url: 'https://hooks.example/a', headers: { 'x-a': '1', 'x-b': '2' } },
  priority: 0,
  is_active: true,
  ordering_key: null,
};

describe('a change of destination', () => {
  it('is any change of type or configuration, headers included', () => {
    expect(changesDestination(rule, { ...rule, destination_config: { url: 'https://hooks.example/b' } })).toBe(true);
    expect(
      changesDestination(rule, { ...rule, destination_config: { url: 'https://hooks.example/a', headers: { 'x-a': '1', 'x-b': '3' } } }),
    ).toBe(true);
    expect(changesDestination(rule, { ...rule, destination_type: 'database', destination_config: { table: 't' } })).toBe(true);
  });

  it('is not a change of anything else, nor of the order of keys', () => {
    expect(changesDestination(rule, { ...rule, rule_name: 'renamed', priority: 5, condition: { 'payload.total': { $gt: 1 } } })).toBe(
      false,
    );
    expect(
      changesDestination(rule, { ...rule, destination_config: { headers: { 'x-b': '2', 'x-a': '1' }, url: 'https://hooks.example/a' } }),
    ).toBe(false);
  });
});

describe('a destination key', () => {
  it('is the same for the same destination whatever the key order, and differs when the destination changes', () => {
    const key = destinationKeyOf(rule);
    expect(key).toMatch(/^[0-9a-f]{32}$/);
    expect(destinationKeyOf({ ...rule, destination_config: { headers: { 'x-b': '2', 'x-a': '1' }, url: 'https://hooks.example/a' } })).toBe(
      key,
    );
    const renamed: RuleFields = { ...rule, rule_name: 'renamed', priority: 3, condition: { event_type: 'x' } };
    expect(destinationKeyOf(renamed)).toBe(key);
    expect(destinationKeyOf({ ...rule, destination_config: { url: 'https://hooks.example/a' } })).not.toBe(key);
  });
});

describe('an event type filter', () => {
  it('is an event type: one no event can have (a space at an end, a line break) is refused rather than never match', () => {
    const input = { ...rule, destination_config: { url: 'https://hooks.example/a' } };
    expect(parseRule({ ...input, event_type_filter: 'Order Completed' }).event_type_filter).toBe('Order Completed');
    for (const filter of [' order ', 'a\nb', '', 'x'.repeat(129)])
      expect(() => parseRule({ ...input, event_type_filter: filter }), JSON.stringify(filter)).toThrow(ValidationError);
  });
});
