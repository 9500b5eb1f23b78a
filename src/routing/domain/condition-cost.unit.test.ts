import { describe, expect, it } from 'vitest';
import { OverBudget, workBudget } from '../../shared/work-budget.js';
import { compileCondition, validateCondition } from './condition.js';
import { MEMBER_STEPS, VISIT_STEPS } from './condition-cost.js';

const compiled = (condition: object) => compileCondition(validateCondition(condition));
/** What testing the condition on the document counts, with no limit. */
const stepsOf = (condition: object, payload: object) => {
  const budget = workBudget(Number.MAX_SAFE_INTEGER);
  compiled(condition)({ payload, event_type: 'x', metadata: {} }, budget);
  return budget.spent;
};

describe('the cost of testing a condition', () => {
  it('is a few dozen steps for an ordinary rule on an ordinary event', () => {
    const condition = { $and: [{ 'payload.total': { $gt: 50 } }, { 'payload.email': { $regex: '@example\\.com$', $options: 'i' } }] };
    expect(stepsOf(condition, { total: 99, email: 'ada@example.com', items: [{ sku: 'a' }, { sku: 'b' }] })).toBeLessThan(1000);
  });

  it('counts a $regex at its steps a character times the length of each string it tests', () => {
    // `a[ab]{985}c` is no one-pass pattern: RE2 may step through all 989 instructions per character.
    const condition = { 'payload.s': { $regex: 'a[ab]{985}c' } };
    expect(stepsOf(condition, { s: 'ab'.repeat(500) })).toBeGreaterThanOrEqual(989 * 1000);
    expect(stepsOf(condition, { s: ['ab'.repeat(500), 'ab'.repeat(500)] })).toBeGreaterThanOrEqual(2 * 989 * 1000);
    // A one-pass pattern follows one thread, whatever its size.
    const uuid = stepsOf(
      { 'payload.s': { $regex: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' } },
      { s: 'f'.repeat(1000) },
    );
    expect(uuid).toBeLessThan(10 * 1000);
  });

  it('counts every value a comparison looks at, and the members of the values it copies', () => {
    const array = Array.from({ length: 1000 }, () => 1);
    const one = stepsOf({ 'payload.a': 5 }, { a: array });
    // Each element, then the array itself, which sift copies whole to compare it.
    expect(one).toBeGreaterThanOrEqual(1000 * VISIT_STEPS + MEMBER_STEPS * 1001);
    expect(stepsOf({ $or: [{ 'payload.a': 5 }, { 'payload.a': 6 }] }, { a: array })).toBeGreaterThanOrEqual(2 * one);
    // $in over scalars is a lookup: no copy of the array.
    expect(stepsOf({ 'payload.a': { $in: [5, 6] } }, { a: array })).toBeLessThan(one);
    // Under $not and $all, sift walks an array value again, element by element.
    expect(stepsOf({ 'payload.a': { $not: { $eq: 5 } } }, { a: array })).toBeGreaterThan(one);
    expect(stepsOf({ 'payload.a': { $all: [5, 6] } }, { a: array })).toBeGreaterThan(2 * one);
    expect(stepsOf({ 'payload.a': { $elemMatch: { $gt: 5 } } }, { a: array })).toBeGreaterThan(1000 * VISIT_STEPS);
  });

  it('stops before sift runs when the count passes the budget', () => {
    // 100 comparisons over 200,000 values took 5 s of the HTTP thread; a 1 MB string under this pattern, 12.5 s.
    const big = { payload: { a: Array.from({ length: 200_000 }, () => 1), s: 'ab'.repeat(500_000) }, event_type: 'x', metadata: {} };
    for (const condition of [
      { $or: Array.from({ length: 100 }, (_, i) => ({ 'payload.a': -i })) },
      { 'payload.s': { $regex: 'a[ab]{985}c' } },
    ]) {
      const budget = workBudget(10_000_000);
      expect(() => compiled(condition)(big, budget)).toThrow(OverBudget);
      expect(budget.spent).toBeLessThanOrEqual(10_000_000);
    }
  });
});
