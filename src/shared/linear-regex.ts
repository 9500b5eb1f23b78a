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
  /** The RE2 instructions it compiles to: what each character it tests costs the engine. */
  readonly instructions: number;
  /** How RE2 runs it (see `runningOf`). */
  readonly engine: RegexEngine;
}

/** A string search, a single thread, the DFA, or the NFA alone. */
export type RegexEngine = 'literal' | 'one-pass' | 'dfa' | 'nfa';

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
 * be the worst for each (2-core machine, 12 to 15 ns a step):
 * - a plain literal (`abc`) is a string search, under a step per character;
 * - a one-pass pattern (anchored, never two ways to go on: `^[0-9a-f]{8}-[0-9a-f]{4}$`) follows a
 *   single thread, about 3 steps per character whatever its size;
 * - any other pattern costs, per character, as many steps as threads of RE2's NFA can be alive at
 *   once (its DFA, when it runs, builds states of that size). `a[ab]{985}c` can have 989: against
 *   random `a`s and `b`s its DFA gives up and the NFA took 12.5 s for 1 MB. An anchored counted
 *   repetition such as `^[A-Za-z ]{1,100}$` compiles to 200 instructions but never has more than a
 *   few threads. The bound is found by following every instruction that any character could
 *   take, from the start and, for a search, from every later position (`liveThreadBound`).
 */
const LITERAL_STEPS = 1;
const ONE_PASS_STEPS = 6;
/**
 * Below this many threads the DFA's states are few enough to stay in its cache, and a character
 * costs a step per thread. From it on, the text can make the DFA build a new state at most
 * characters, and it is slower than the NFA: "an a fourteen characters before the end" (`a.{14}$`,
 * `a[ab]{14}$`) on random a's and b's took the DFA 1.8 to 2.6 µs a character, 150 ns per thread,
 * where the NFA took 0.3 µs. Priced as the NFA while the DFA still ran, such a pattern held the
 * thread three times as long as its budget said. From here on the pattern runs on the NFA alone.
 */
const DFA_STATES_CACHED_BELOW = 8;
/** The NFA's price per thread and character: it took up to 33 ns per thread alive and character (`\pL{990}c` on a's). */
const NFA_STEPS = 3;

/**
 * Compiled patterns by flags and pattern. Checking a rule, costing it and compiling it each compile its
 * patterns, and a pattern of a thousand instructions takes milliseconds to cost: three hundred rules of
 * ten such patterns held a thread for seconds after every rule change. A compiled pattern keeps no state
 * between tests, so one serves every rule that holds it.
 */
const compiledPatterns = new Map<string, LinearRegex | UnsupportedRegexError>();
const REMEMBERED_PATTERNS = 1000;

/** Compiles JavaScript regex syntax to RE2, or throws `UnsupportedRegexError` saying why not. */
export function compileLinearRegex(pattern: string, flags = ''): LinearRegex {
  const key = `${flags}/${pattern}`;
  let known = compiledPatterns.get(key);
  if (known === undefined) {
    try {
      const regex = compileRe2(pattern, flags);
      const { engine, stepsPerCharacter } = runningOf(regex);
      known = {
        test: (text) => regex.test(text),
        toString: () => regex.toString(),
        stepsPerCharacter,
        instructions: instructionsOf(regex),
        engine,
      };
    } catch (error) {
      if (!(error instanceof UnsupportedRegexError)) throw error;
      known = error;
    }
    if (compiledPatterns.size >= REMEMBERED_PATTERNS) compiledPatterns.clear();
    compiledPatterns.set(key, known);
  }
  if (known instanceof UnsupportedRegexError) throw known;
  return known;
}

/**
 * The instructions a pattern compiles to, which every character it tests costs: what several
 * patterns applied to one value add up to. Undefined for a pattern RE2 cannot run.
 */
export function linearRegexSize(pattern: string, flags = ''): number | undefined {
  try {
    return compileLinearRegex(pattern, flags).instructions;
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
interface Instruction {
  readonly op: number;
  readonly out: number;
  readonly arg: number;
}
interface Re2Internals {
  readonly prog: { readonly start: number; numInst(): number; getInst(pc: number): Instruction };
  /** Set when the pattern is one-pass: matched by a single thread. */
  readonly onepass: unknown;
  /** True when the pattern is a plain literal, found by a string search. */
  readonly prefixComplete: boolean;
}
/** re2js's instruction codes, read from its instruction class rather than copied. */
interface InstructionCodes {
  readonly ALT: number;
  readonly ALT_MATCH: number;
  readonly CAPTURE: number;
  readonly EMPTY_WIDTH: number;
  readonly NOP: number;
  isRuneOp(op: number): boolean;
}
/** Instructions the search for `liveThreadBound` may visit: a few milliseconds when a rule or schema is compiled. */
const ANALYSIS_WORK = 30_000;
/** RE2's empty-width flag for `^` without the m flag: true only at the start of the text. */
const EMPTY_BEGIN_TEXT = 4;

const internalsOf = (regex: RE2JS): Re2Internals => regex.re2Input as Re2Internals;
const instructionsOf = (regex: RE2JS): number => internalsOf(regex).prog.numInst();

/** Decides how the pattern runs where that is ours to choose (see `DFA_STATES_CACHED_BELOW`), and what a character then costs. */
function runningOf(regex: RE2JS): { engine: RegexEngine; stepsPerCharacter: number } {
  const internals = internalsOf(regex);
  if (internals.prefixComplete) return { engine: 'literal', stepsPerCharacter: LITERAL_STEPS };
  if (internals.onepass !== null && internals.onepass !== undefined) return { engine: 'one-pass', stepsPerCharacter: ONE_PASS_STEPS };
  const threads = liveThreadBound(internals.prog);
  if (threads < DFA_STATES_CACHED_BELOW) return { engine: 'dfa', stepsPerCharacter: threads };
  // re2js tries `this.dfa` first and goes on to its backtracker or NFA when it answers null.
  Object.defineProperty(internals, 'dfa', { value: { match: () => null } });
  return { engine: 'nfa', stepsPerCharacter: NFA_STEPS * threads };
}

/**
 * The most instructions RE2 can have in hand at one position of a search: the sets reachable after
 * k characters when every character is taken to match every rune instruction (so they hold the
 * real ones), with a new thread from the start at each position, followed until they repeat.
 */
function liveThreadBound(prog: Re2Internals['prog']): number {
  const size = prog.numInst();
  const codes = prog.getInst(prog.start).constructor as unknown as InstructionCodes;
  const closure = (from: number[], atStart: boolean): number[] => {
    const found = new Set<number>();
    const stack = from;
    for (let pc = stack.pop(); pc !== undefined; pc = stack.pop()) {
      // pc 0 is the program's FAIL instruction.
      if (pc === 0 || found.has(pc)) continue;
      found.add(pc);
      const inst = prog.getInst(pc);
      if (inst.op === codes.ALT || inst.op === codes.ALT_MATCH) stack.push(inst.out, inst.arg);
      else if (inst.op === codes.NOP || inst.op === codes.CAPTURE) stack.push(inst.out);
      else if (inst.op === codes.EMPTY_WIDTH && (atStart || (inst.arg & EMPTY_BEGIN_TEXT) === 0)) stack.push(inst.out);
    }
    return [...found].sort((a, b) => a - b);
  };
  let live = closure([prog.start], true);
  let most = live.length;
  const seen = new Set<string>([live.join()]);
  // Sets that keep growing (an unanchored search through a long repetition) are given up on once
  // they have cost this much: their bound is then the whole program, which is about where they go.
  let work = 0;
  for (let position = 0; work < ANALYSIS_WORK && most < size; position++) {
    const next = live.flatMap((pc) => {
      const inst = prog.getInst(pc);
      return codes.isRuneOp(inst.op) ? [inst.out] : [];
    });
    live = closure([...next, prog.start], false);
    most = Math.max(most, live.length);
    work += live.length;
    const key = live.join();
    if (seen.has(key)) return most;
    seen.add(key);
  }
  return most < size ? size : most;
}
