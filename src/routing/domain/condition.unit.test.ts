import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import * as siftNamespace from 'sift';
import { workBudget } from '../../shared/work-budget.js';
import { compileCondition, conditionProblem, validateCondition, type Condition } from './condition.js';

const event = {
  event_type: 'order_created',
  payload: { total: 99.99, tags: ['vip', 'eu'], customer: { email: 'a@b.io' } },
  metadata: { ip: '203.0.113.5' },
};
const unlimited = () => workBudget(Number.MAX_SAFE_INTEGER);
const matches = (condition: object) => compileCondition(validateCondition(condition))(event, unlimited());

describe('rule conditions', () => {
  it.each([
    [{ 'payload.total': { $gt: 50 } }, true],
    [{ 'payload.total': { $gt: 100 } }, false],
    [{ 'payload.total': { $gte: 99.99, $lte: 100 } }, true],
    [{ 'payload.total': { $lt: 10 } }, false],
    [{ event_type: 'order_created' }, true],
    [{ event_type: { $ne: 'order_created' } }, false],
    [{ 'payload.tags': { $in: ['vip'] } }, true],
    [{ 'payload.tags': { $nin: ['vip'] } }, false],
    [{ 'payload.coupon': { $exists: false } }, true],
    [{ 'payload.customer.email': { $regex: '@B\\.IO$', $options: 'i' } }, true],
    [{ 'payload.total': { $not: { $gt: 50 } } }, false],
    // A pattern alone under $not is a regex, as in MongoDB: "does not match".
    [{ 'payload.customer.email': { $not: '^a@' } }, false],
    [{ 'payload.customer.email': { $not: '^b@' } }, true],
    [{ 'payload.customer.email': { $not: { $regex: '^A@', $options: 'i' } } }, false],
    [{ $or: [{ 'payload.total': { $lt: 10 } }, { 'metadata.ip': '203.0.113.5' }] }, true],
    [{ $and: [{ 'payload.total': { $gt: 10 } }, { event_type: 'refund' }] }, false],
    [{}, true],
  ])('%j matches: %s', (condition, expected) => {
    expect(matches(condition)).toBe(expected);
  });

  it.each([
    [{ $where: 'this.payload.total > 1' }, 'condition.$where'],
    [{ 'payload.total': { $where: 'x' } }, 'condition.payload.total.$where'],
    [{ 'payload.total': { $function: {} } }, 'condition.payload.total.$function'],
    [{ $expr: { $gt: ['$a', 1] } }, 'condition.$expr'],
    [{ 'payload.total': { $bogus: 1 } }, 'condition.payload.total.$bogus'],
    [{ 'payload.tags': { $in: 'vip' } }, 'condition.payload.tags.$in'],
    [{ $or: { a: 1 } }, 'condition.$or'],
    [{ 'payload.x': { $regex: '(' } }, 'condition.payload.x.$regex'],
    [{ 'payload.x': { $regex: '(a)\\1' } }, 'condition.payload.x.$regex'],
    [{ 'payload.x': { $regex: 'a(?!b)' } }, 'condition.payload.x.$regex'],
    [{ 'payload.x': { $regex: '\\pL{1000}'.repeat(28) } }, 'condition.payload.x.$regex'],
    [{ 'payload.x': { $gt: 1, plain: 2 } }, 'condition.payload.x.plain'],
    [[1, 2], 'condition'],
    // sift would refuse these only when compiling the rule, on every event of its application.
    [{ 'payload.x': { $in: [{ $gt: 1 }] } }, 'condition.payload.x.$in'],
    [{ 'payload.x': { $nin: [1, { $gt: 1 }] } }, 'condition.payload.x.$nin'],
    [{ 'payload.x': { $all: [{ a: { $size: 1 } }] } }, 'condition.payload.x.$all'],
    [{ 'payload.x': { $elemMatch: { $in: [{ $where: '1' }] } } }, 'condition.payload.x.$elemMatch.$in'],
    [{ 'payload.x': { $not: { $in: [{ $size: 1 }] } } }, 'condition.payload.x.$not.$in'],
    // MongoDB refuses the first and matches nothing with the second; the matcher would match nothing, then everything.
    [{ 'payload.x': { $not: {} } }, 'condition.payload.x.$not'],
    [{ 'payload.x': { $all: [] } }, 'condition.payload.x.$all'],
  ])('refuses %j at %s', (condition, path) => {
    try {
      validateCondition(condition);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).violations.map((v) => v.path)).toContain(path);
    }
  });

  it('runs $regex on a linear-time engine: a catastrophic pattern answers at once', () => {
    const test = compileCondition(validateCondition({ 'payload.s': { $regex: '(a+)+$' } }));
    // With a backtracking engine this single test took 16 s; here it is as quick as any other.
    expect(test({ payload: { s: 'a'.repeat(29) + '!' } }, unlimited())).toBe(false);
    expect(test({ payload: { s: 'a'.repeat(100_000) + '!' } }, unlimited())).toBe(false);
    expect(test({ payload: { s: 'aaa' } }, unlimited())).toBe(true);
    expect(test({ payload: { s: 42 } }, unlimited())).toBe(false);
    expect(compileCondition(validateCondition({ 'payload.s': { $not: { $regex: '^x' } } }))({ payload: { s: 'y' } }, unlimited())).toBe(
      true,
    );
  });

  it('refuses $regex patterns that together compile to more than 10,000 RE2 instructions, each costing a step per character', () => {
    const large = { 'payload.s': { $regex: '\\pL{998}' } };
    expect(validateCondition({ $or: Array.from({ length: 10 }, () => large) })).toBeDefined();
    expect(() => validateCondition({ $or: Array.from({ length: 11 }, () => large) })).toThrow(/RE2 instructions together, more than 10000/);
  });

  it('refuses a condition of more than 100 comparisons, each of which walks every value at its path', () => {
    const branches = (n: number) => ({ $or: Array.from({ length: n }, (_, i) => ({ 'payload.list.sku': `sku-${i}` })) });
    expect(validateCondition(branches(100))).toBeDefined();
    expect(() => validateCondition(branches(101))).toThrow(/101 comparisons, more than 100/);
    const all = (n: number) => ({ 'payload.list': { $all: Array.from({ length: n }, (_, i) => ({ k: i })) } });
    expect(() => validateCondition({ ...all(90), $and: [all(20)] })).toThrow(/comparisons, more than 100/);
    // A long list in $in is one lookup per value, not a comparison per listed value.
    expect(validateCondition({ 'payload.sku': { $in: Array.from({ length: 5000 }, (_, i) => `sku-${i}`) } })).toBeDefined();
  });

  it('never matches with a stored pattern RE2 cannot run (saved before patterns were checked), instead of throwing', () => {
    const test = compileCondition({ 'payload.s': { $regex: '(a)\\1' } });
    expect(test({ payload: { s: 'aa' } }, unlimited())).toBe(false);
  });

  it('says why a stored condition cannot run under today’s limits, and nothing for one that can', () => {
    expect(conditionProblem({ 'payload.s': { $regex: '^a' } })).toBeNull();
    expect(conditionProblem({})).toBeNull();
    expect(conditionProblem({ 'payload.s': { $not: { $regex: '(a)\\1' } } })).toMatch(
      /^condition\.payload\.s\.\$not\.\$regex: unsupported regular expression: .*backreferences/,
    );
    const branches = { $or: Array.from({ length: 150 }, (_, i) => ({ [`payload.f${i}`]: 1 })) };
    expect(conditionProblem(branches)).toBe('condition: makes 150 comparisons, more than 100 (use $in for a list of values)');
    expect(conditionProblem({ 'payload.s': { $where: 'true' } })).toMatch(/unknown or forbidden operator \$where/);
  });

  it('lists every problem of a condition at once', () => {
    try {
      validateCondition({ a: { $bogus: 1 }, b: { $in: 3 } });
      expect.unreachable();
    } catch (error) {
      expect((error as ValidationError).violations).toHaveLength(2);
    }
  });
});

// sift is CommonJS: under ESM its exports arrive on `default`.
const sift = (siftNamespace as unknown as { default: typeof siftNamespace }).default;

describe('$in and $nin over lists of scalars', () => {
  const documents: object[] = [
    { payload: { country: 'DE' } },
    { payload: { country: 'FR' } },
    { payload: { country: ['FR', 'IT'] } },
    { payload: { country: ['DE', 'IT'] } },
    { payload: { country: [] } },
    { payload: { country: null } },
    { payload: {} },
    { payload: { country: 1 } },
    { payload: { country: '1' } },
    { payload: { country: true } },
    { payload: { items: [{ sku: 'a' }, { sku: 'b' }] } },
    { payload: { items: [{ sku: 'c' }] } },
    { payload: { items: [[{ sku: 'a' }]] } },
    { payload: { country: { code: 'DE' } } },
  ];
  const queries: Condition[] = [
    { 'payload.country': { $in: ['DE', 'IT'] } },
    { 'payload.country': { $in: [1, true] } },
    { 'payload.country': { $in: [] } },
    { 'payload.country': { $nin: ['DE', 'IT'] } },
    { 'payload.country': { $nin: [] } },
    { 'payload.country': { $nin: ['1'] } },
    { 'payload.items.sku': { $in: ['a'] } },
    { 'payload.items.sku': { $nin: ['a'] } },
    { 'payload.country': { $not: { $in: ['DE'] } } },
    { $or: [{ 'payload.country': { $in: ['FR'] } }, { 'payload.items.sku': { $nin: ['c'] } }] },
  ];

  it("match exactly what sift's own operators match", () => {
    for (const query of queries) {
      const ours = compileCondition(validateCondition(query));
      const reference = sift.createQueryTester(query, { operations: { $in: sift.$in, $nin: sift.$nin, $not: sift.$not, $or: sift.$or } });
      expect(
        documents.map((d) => ours(d, unlimited())),
        JSON.stringify(query),
      ).toEqual(documents.map((d) => reference(d)));
    }
  });

  it('look a long list up once per value, however long the array in the event', () => {
    // sift compared each of the 10,000 values with each of the 500,000 elements: minutes on the ingest path.
    const listed = Array.from({ length: 10_000 }, (_, i) => `c-${i}`);
    const event = { payload: { country: Array.from({ length: 500_000 }, () => 'zz') } };
    expect(compileCondition(validateCondition({ 'payload.country': { $in: listed } }))(event, unlimited())).toBe(false);
    expect(compileCondition(validateCondition({ 'payload.country': { $nin: listed } }))(event, unlimited())).toBe(true);
  });

  it('refuse lists longer than the limits when saved', () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => i);
    expect(() => validateCondition({ 'payload.a': { $in: many(10_001) } })).toThrow(ValidationError);
    expect(() => validateCondition({ 'payload.a': { $all: many(101) } })).toThrow(ValidationError);
    expect(validateCondition({ 'payload.a': { $in: many(10_000) } })).toBeDefined();
  });
});

describe('field paths', () => {
  it('may not reach into the prototype of the data', () => {
    expect(() => validateCondition({ 'payload.constructor.name': 'Object' })).toThrow(ValidationError);
    expect(() => validateCondition({ 'payload.__proto__': { $exists: true } })).toThrow(ValidationError);
  });

  it('may not have an empty segment', () => {
    for (const path of ['payload..total', 'payload.', '.payload']) expect(() => validateCondition({ [path]: 1 })).toThrow(ValidationError);
    expect(compileCondition(validateCondition({ 'payload.constructors': 'x' }))({ payload: { constructors: 'x' } }, unlimited())).toBe(
      true,
    );
  });
});
