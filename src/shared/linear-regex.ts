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

/** Compiles JavaScript regex syntax to RE2, or throws `UnsupportedRegexError` saying why not. */
export function compileLinearRegex(pattern: string, flags = ''): LinearRegex {
  return compileRe2(pattern, flags);
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

// re2js keeps the compiled program on the RE2 it wraps; its type says `any`.
const instructionsOf = (regex: RE2JS): number => (regex.re2Input.prog as { numInst(): number }).numInst();
