import { describe, expect, it } from 'vitest';
import { compileLinearRegex, UnsupportedRegexError } from './linear-regex.js';

describe('compileLinearRegex', () => {
  it('matches like a JavaScript regex for the common syntax and flags', () => {
    expect(compileLinearRegex('^\\d{3}-[a-z]+$').test('123-abc')).toBe(true);
    expect(compileLinearRegex('^ORD-', '').test('ord-1')).toBe(false);
    expect(compileLinearRegex('^ORD-', 'i').test('ord-1')).toBe(true);
    expect(compileLinearRegex('^b', 'm').test('a\nb')).toBe(true);
    expect(compileLinearRegex('a.b', 's').test('a\nb')).toBe(true);
    expect(compileLinearRegex('caf\\u00e9', 'u').test('un café')).toBe(true);
    expect(compileLinearRegex('(?<year>\\d{4})').test('in 2026')).toBe(true);
  });

  it('refuses what RE2 cannot run in linear time, saying why', () => {
    expect(() => compileLinearRegex('(a)\\1')).toThrow(UnsupportedRegexError);
    expect(() => compileLinearRegex('x(?=y)')).toThrow(/lookarounds/);
    expect(() => compileLinearRegex('a', 'y')).toThrow(/flag y/);
  });

  it('takes time linear in the input where backtracking takes exponential time', () => {
    // A backtracking engine needs about 2^n steps for (a+)+$ against n a's and a '!': with n = 29 that
    // was 16 s. RE2 answers for 29 and for 100,000 characters; compare the two instead of a clock bound.
    const regex = compileLinearRegex('(a+)+$');
    const time = (n: number) => {
      const text = 'a'.repeat(n) + '!';
      const start = process.hrtime.bigint();
      for (let i = 0; i < 5; i++) expect(regex.test(text)).toBe(false);
      return Number(process.hrtime.bigint() - start) / 5;
    };
    time(1000); // warm up
    const small = time(2_000);
    const large = time(64_000);
    // 32 times the input: linear means about 32 times the time; exponential would not finish.
    expect(large / small).toBeLessThan(32 * 8);
  });
});

describe('the size of a compiled pattern', () => {
  it('refuses a pattern whose program would make each character cost thousands of steps', () => {
    // 252 characters; 28,000 instructions took 13 s against 100,000 characters.
    expect(() => compileLinearRegex('\\pL{1000}'.repeat(28))).toThrow(/28\d{3} RE2 instructions, more than 1000/);
    expect(() => compileLinearRegex('(?:[a-z]{100}){20}')).toThrow(UnsupportedRegexError);
  });

  it('accepts the patterns people write, and one repetition as large as RE2 allows', () => {
    for (const pattern of [
      '^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$',
      '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$',
      '^(apple|banana|cherry|damson|elderberry|fig|grape)s?$',
      '.{255}',
      '\\pL{998}',
    ]) {
      expect(compileLinearRegex(pattern, 'i').test('x')).toBeTypeOf('boolean');
    }
  });
});

describe('what a character costs a pattern', () => {
  it('is a step for a literal, a few for a one-pass or anchored pattern, and per thread it can run otherwise', () => {
    const steps = (pattern: string, flags = '') => compileLinearRegex(pattern, flags).stepsPerCharacter;
    expect(steps('urgent')).toBe(1);
    expect(steps('^[0-9a-f]{8}-[0-9a-f]{4}$')).toBe(6);
    // 200 instructions, but never more than a few threads: each character moves the one thread on.
    expect(steps('^[A-Za-z ]{1,100}$')).toBeLessThanOrEqual(6);
    // Fourteen threads at most: from eight on, run on the NFA at 3 steps a thread.
    expect(steps('@example\\.com$', 'i')).toBe(3 * 14);
    expect(steps('[ab]*a[ab]{40}$')).toBeGreaterThanOrEqual(3 * 41);
    // A search through a long repetition has a thread from every position: run on the NFA, 3 steps each.
    expect(steps('a[ab]{985}c')).toBe(3 * 989);
    expect(steps('(?m)^[ab]{1,100}$')).toBeGreaterThan(200);
  });

  it('runs a pattern of eight threads or more on the NFA, whose time its price tells, and fewer on the DFA', () => {
    const engine = (pattern: string, flags = '') => compileLinearRegex(pattern, flags).engine;
    expect(engine('urgent')).toBe('literal');
    expect(engine('^[0-9a-f]{8}-[0-9a-f]{4}$')).toBe('one-pass');
    expect(engine('a[ab]{4}$')).toBe('dfa');
    // "An a fourteen characters before the end" makes the DFA build a state at most characters of
    // random a's and b's: it took five times as long as the NFA, and three times its price.
    expect(engine('a[ab]{14}$')).toBe('nfa');
    expect(engine('a.{14}$')).toBe('nfa');
    expect(engine('@example\\.com$', 'i')).toBe('nfa');
    const regex = compileLinearRegex('a[ab]{14}$');
    expect(regex.test(`${'b'.repeat(100)}a${'b'.repeat(14)}`)).toBe(true);
    expect(regex.test(`${'b'.repeat(100)}a${'b'.repeat(13)}`)).toBe(false);
  });

  it('answers as RE2 does when the pattern runs on the NFA alone', () => {
    const regex = compileLinearRegex('a[ab]{98}c');
    expect(regex.stepsPerCharacter).toBeGreaterThan(64);
    expect(regex.test(`xx${'a'.repeat(99)}c`)).toBe(true);
    expect(regex.test(`${'a'.repeat(98)}c`)).toBe(false);
    expect(regex.test(`${'b'.repeat(5000)}a${'b'.repeat(98)}c`)).toBe(true);
    expect(regex.test(`${'b'.repeat(5000)}a${'b'.repeat(97)}c`)).toBe(false);
  });
});
