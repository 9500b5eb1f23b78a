import { describe, expect, it } from 'vitest';
import type { StoredRule } from './ports.js';
import { ruleEvaluator } from './rule-evaluator.js';

const rule = (condition: object): StoredRule =>
  ({
    rule_id: 'r1',
    app_id: 'shop',
    rule_name: 'r',
    event_type_filter: null,
    condition,
    destination_type: 'webhook',
    destination_config: {},
    priority: 0,
    is_active: true,
    created_at: '2026-11-24T10:00:00.000Z',
  }) as unknown as StoredRule;

const event = {
  app_id: 'shop',
  event_type: 'Order Completed',
  payload: { properties: { revenue: 120 }, traits: { plan: 'pro' }, context: { ip: '203.0.113.9' } },
  metadata: {},
};

describe('rule conditions over analytics SDK messages', () => {
  it('address properties.*, traits.* and context.* directly, as well as under payload', async () => {
    for (const condition of [
      { 'properties.revenue': { $gt: 100 } },
      { 'traits.plan': 'pro' },
      { 'context.ip': { $regex: '^203\\.' } },
      { 'payload.properties.revenue': 120 },
    ]) {
      const decision = await ruleEvaluator(async () => [rule(condition)]).evaluate(event);
      expect(decision.matchedRuleIds, JSON.stringify(condition)).toEqual(['r1']);
    }
    const miss = await ruleEvaluator(async () => [rule({ 'properties.revenue': { $gt: 200 } })]).evaluate(event);
    expect(miss.matchedRuleIds).toEqual([]);
  });
});

describe('the compiled rules of an application', () => {
  it('are kept until invalidated, or read again once older than maxAgeMs', async () => {
    let stored = [rule({ 'properties.revenue': { $gt: 100 } })];
    let loads = 0;
    let clock = 0;
    const evaluator = ruleEvaluator(
      async () => {
        loads += 1;
        return stored;
      },
      { maxAgeMs: 1000, now: () => clock },
    );
    expect((await evaluator.evaluate(event)).matchedRuleIds).toEqual(['r1']);
    stored = [];
    clock = 1000;
    expect((await evaluator.evaluate(event)).matchedRuleIds).toEqual(['r1']);
    expect(loads).toBe(1);
    clock = 1001;
    expect((await evaluator.evaluate(event)).matchedRuleIds).toEqual([]);
    expect(loads).toBe(2);
    stored = [rule({ 'traits.plan': 'pro' })];
    evaluator.invalidate('shop');
    expect((await evaluator.evaluate(event)).matchedRuleIds).toEqual(['r1']);
    expect(loads).toBe(3);
  });
});
