import { describe, expect, it } from 'vitest';
import { findJsonFault, hasLoneSurrogate, mayHoldSurrogates, unsafeIntegerLiterals, unsafeIntegerLiteralsByItem } from './json-faults.js';

const limits = { maxDepth: 4 };

describe('findJsonFault', () => {
  it('accepts JSON within the limits', () => {
    expect(findJsonFault({ a: [1, { b: 'x' }], s: '😀', n: -2.5e300 }, limits)).toBeUndefined();
    expect(findJsonFault('plain', limits)).toBeUndefined();
  });

  it('counts containers for depth and names the path where the limit is crossed', () => {
    expect(findJsonFault({ a: { b: { c: {} } } }, limits)).toBeUndefined();
    expect(findJsonFault({ a: { b: [{ c: {} }] } }, limits)).toEqual({
      kind: 'too-deep',
      path: 'a.b[0].c',
      message: 'nests deeper than 4 levels',
    });
    expect(findJsonFault([[[[[]]]]], limits)?.path).toBe('[0][0][0][0]');
  });

  it('counts every value, the document included, and names the first one past the limit', () => {
    const limits = { maxDepth: 64, maxValues: 5 };
    expect(findJsonFault({ a: [1, 2], b: 'x' }, limits)).toBeUndefined();
    expect(findJsonFault({ a: [1, 2], b: 'x', c: null }, limits)).toMatchObject({ kind: 'too-many-values', path: 'c' });
    expect(findJsonFault({ a: [1, 2, 3, 4] }, limits)).toMatchObject({ kind: 'too-many-values', path: 'a[3]' });
  });

  it('stops reading a container at the first child past the limit, however many it holds', () => {
    const read = new Set<PropertyKey>();
    const counting = <T extends object>(target: T) =>
      new Proxy(target, {
        get(object, key, receiver) {
          read.add(key);
          return Reflect.get(object, key, receiver) as unknown;
        },
      });
    const limits = { maxDepth: 64, maxValues: 1_000 };
    expect(findJsonFault(counting(new Array<number>(100_000).fill(0)), limits)).toMatchObject({ kind: 'too-many-values', path: '[999]' });
    expect([...read].filter((key) => key !== 'length')).toHaveLength(1_000);
    read.clear();
    const wide = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i]));
    expect(findJsonFault(counting(wide), limits)).toMatchObject({ kind: 'too-many-values', path: 'k999' });
    expect(read.size).toBe(1_000);
  });

  it('walks hostile depth without recursion', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(findJsonFault(deep, { maxDepth: 64 })?.kind).toBe('too-deep');
    expect(findJsonFault(deep, { maxDepth: 1_000_000 })).toBeUndefined();
  });

  it('finds lone surrogates in strings and keys, quoting odd keys in the path', () => {
    expect(findJsonFault({ list: ['ok', 'a\ud800'] }, limits)).toMatchObject({ kind: 'lone-surrogate', path: 'list[1]' });
    expect(findJsonFault({ 'odd key': { ['k\udc00']: 1 } }, limits)).toMatchObject({
      kind: 'lone-surrogate',
      path: '["odd key"]["k\\udc00"]',
    });
  });

  it('refuses numbers a double cannot hold and the unsafe integer literals it is told about', () => {
    expect(findJsonFault({ n: [0, Infinity] }, limits)).toMatchObject({ kind: 'number-out-of-range', path: 'n[1]' });
    expect(findJsonFault({ n: -Infinity }, limits)?.kind).toBe('number-out-of-range');
    expect(findJsonFault({ n: 2 ** 53 }, limits)).toBeUndefined();
    expect(findJsonFault({ n: 2 ** 53 }, limits, new Set([2 ** 53]))).toMatchObject({ kind: 'unsafe-integer', path: 'n' });
  });
});

describe('hasLoneSurrogate', () => {
  it.each([
    ['', false],
    ['plain', false],
    ['😀 pair', false],
    ['\ud83d', true],
    ['x\ude00', true],
    ['\ude00\ud83d', true],
    ['\ud83d\ude00\ud83d', true],
  ])('%j → %s', (text, expected) => expect(hasLoneSurrogate(text)).toBe(expected));
});

describe('unsafeIntegerLiterals', () => {
  it('finds integer literals beyond 2^53-1 and ignores floats, exponents and strings', () => {
    const text =
      '{"a":9007199254740991,"b":9007199254740993,"c":-90071992547409930,"d":1.5e300,"e":12345678901234567.5,"f":"99999999999999999999"}';
    expect([...unsafeIntegerLiterals(text)]).toEqual([2 ** 53, Number('-90071992547409930')]);
  });

  it('takes a literal whose fraction is only zeros for the integer it is', () => {
    expect([...unsafeIntegerLiterals('{"n":9007199254740993.0,"m":9007199254740993.000,"f":12345678901234567.05}')]).toEqual([2 ** 53]);
  });

  it('skips escaped quotes inside strings', () => {
    expect(unsafeIntegerLiterals('["\\"99999999999999999999", 1]').size).toBe(0);
  });

  it('finds one in the text after the last short number', () => {
    expect([...unsafeIntegerLiterals('[1, 123456789012345, 99999999999999999]')]).toEqual([Number('99999999999999999')]);
  });
});

describe('unsafeIntegerLiteralsByItem', () => {
  it('tells which element of the items field each literal stands in, and which stand outside it', () => {
    const text =
      '{"id":12345678901234567891,"ev\\u0065nts":[{"a":12345678901234567890},{"b":1.2345678901234567e19},' +
      '[99999999999999999, {"c":[88888888888888888]}],"x,]}[\\"",77777777777777777],"tail":[66666666666666666]}';
    const { outside, inItems } = unsafeIntegerLiteralsByItem(text, 'events');
    expect([...outside]).toEqual([Number('12345678901234567891'), Number('66666666666666666')]);
    expect([...inItems.entries()].map(([item, values]) => [item, [...values]])).toEqual([
      [0, [Number('12345678901234567890')]],
      [2, [Number('99999999999999999'), Number('88888888888888888')]],
      [4, [Number('77777777777777777')]],
    ]);
  });

  it('reads the last of a key given twice, as JSON.parse does', () => {
    const { inItems } = unsafeIntegerLiteralsByItem('{"events":[1,22222222222222222],"events":[33333333333333333]}', 'events');
    expect([...inItems.entries()].map(([item, values]) => [item, [...values]])).toEqual([[0, [Number('33333333333333333')]]]);
  });
});

describe('mayHoldSurrogates', () => {
  it('is false only for text that cannot parse into a surrogate code unit', () => {
    expect(mayHoldSurrogates('{"a":"plain ascii","b":"caf\u00e9 é","c":"\\\\u0041"}')).toBe(false);
    expect(mayHoldSurrogates('{"a":"\\ud800"}')).toBe(true);
    expect(mayHoldSurrogates('{"a":"\\uDFFF"}')).toBe(true);
    expect(mayHoldSurrogates('{"a":"😀"}')).toBe(true);
    expect(mayHoldSurrogates('{"a":"\ud800"}')).toBe(true);
  });
});
