import { RE2JS } from 're2js';

/**
 * Regular expressions written by API callers (rule `$regex`, schema `pattern`) run on RE2, whose
 * matching time is linear in the input: no pattern can make one event freeze the event loop, as
 * `(a+)+$` does with a backtracking engine. The price is that backreferences and lookarounds are
 * not supported; such a pattern is refused when it is saved.
 */
export interface LinearRegex {
  test(text: string): boolean;
  toString(): string;
  /**
   * The most one character of a tested string can cost, in steps (see `MAX_REGEX_INSTRUCTIONS`):
   * what callers count against a work budget before they test, `stepsPerCharacter × length`.
   */
  readonly stepsPerCharacter: number;
}

export class UnsupportedRegexError extends Error {}

/**
 * Linear time is instructions × characters: RE2 steps through every instruction of the compiled
 * program for each character of the input. `\pL{1000}` written 28 times fits in 256 characters and
 * compiles to 28,000 instructions, which took 13 s against a 100 KB string. A program stays within
 * what one repetition may reach in RE2 itself (`{1000}`); real patterns compile to a few dozen.
 */
export const MAX_REGEX_INSTRUCTIONS = 1000;

const FLAGS: Record<string, number> = {
  i: RE2JS.CASE_INSENSITIVE,
  m: RE2JS.MULTILINE,
  s: RE2JS.DOTALL,
  // RE2 always matches by code point, so `u` (which ajv passes) and `g` (no state in a test) change nothing.
  u: 0,
  g: 0,
};

/**
 * What one character costs by the way RE2 runs the pattern, measured with re2js on strings built to
 * be the worst for each (2-core machine, about 12 ns a step):
 * - a plain literal (`abc`) is a string search, under a step per character;
 * - a one-pass pattern (anchored, never two ways to go on: `^[0-9a-f]{8}-[0-9a-f]{4}$`, `^[a-z]+$`)
 *   follows a single thread, about 3 steps per character whatever its size;
 * - any other pattern may fall back to RE2's NFA, which steps through up to every instruction for
 *   every character: `a[ab]{990}c` against random `a`s and `b`s took 12.5 s for 1 MB, 12.6 ns per
 *   instruction and character.
 */
const LITERAL_STEPS = 1;
const ONE_PASS_STEPS = 6;

/** Compiles JavaScript regex syntax to RE2, or throws `UnsupportedRegexError` saying why not. */
export function compileLinearRegex(pattern: string, flags = ''): LinearRegex {
  const regex = compileRe2(pattern, flags);
  const stepsPerCharacter = stepsPerCharacterOf(regex);
  return { test: (text) => regex.test(text), toString: () => regex.toString(), stepsPerCharacter };
}

/**
 * The instructions a pattern compiles to, which every character it tests costs: what several
 * patterns applied to one value add up to. Undefined for a pattern RE2 cannot run.
 */
export function linearRegexSize(pattern: string, flags = ''): number | undefined {
  try {
    return instructionsOf(compileRe2(pattern, flags));
  } catch (error) {
    if (error instanceof UnsupportedRegexError) return undefined;
    throw error;
  }
}

function compileRe2(pattern: string, flags: string): RE2JS {
  let bits = 0;
  for (const flag of flags) {
    const bit = FLAGS[flag];
    if (bit === undefined) throw new UnsupportedRegexError(`flag ${flag} is not supported (use i, m, s or u)`);
    bits |= bit;
  }
  let regex: RE2JS;
  try {
    regex = RE2JS.compile(RE2JS.translateRegExp(pattern), bits);
  } catch (error) {
    const reason = (error as Error).message.replace(/^error parsing regexp: /, '');
    throw new UnsupportedRegexError(`${reason} (patterns run on RE2: no backreferences or lookarounds)`);
  }
  if (instructionsOf(regex) > MAX_REGEX_INSTRUCTIONS) {
    throw new UnsupportedRegexError(
      `the pattern compiles to ${instructionsOf(regex)} RE2 instructions, more than ${MAX_REGEX_INSTRUCTIONS}: ` +
        'make its repetitions smaller (each costs its count in instructions for every character tested)',
    );
  }
  return regex;
}

// re2js keeps the compiled program, and how it will run it, on the RE2 it wraps; its type says `any`.
interface Re2Internals {
  readonly prog: { numInst(): number };
  /** Set when the pattern is one-pass: matched by a single thread. */
  readonly onepass: unknown;
  /** True when the pattern is a plain literal, found by a string search. */
  readonly prefixComplete: boolean;
}
const internalsOf = (regex: RE2JS): Re2Internals => regex.re2Input as Re2Internals;
const instructionsOf = (regex: RE2JS): number => internalsOf(regex).prog.numInst();

function stepsPerCharacterOf(regex: RE2JS): number {
  const internals = internalsOf(regex);
  if (internals.prefixComplete) return LITERAL_STEPS;
  if (internals.onepass !== null && internals.onepass !== undefined) return ONE_PASS_STEPS;
  return instructionsOf(regex);
}
