import type { Violation } from '../errors.js';

/**
 * What JSON a request may carry beyond being well-formed. Every check is a single iterative pass, so
 * no input, however deep or long, can overflow the stack or take more than linear time.
 */
export interface JsonLimits {
  /** Containers (objects and arrays) nested deeper than this are refused; `{}` has depth 1. */
  readonly maxDepth: number;
  /**
   * Values (every object member, array element and the document itself) beyond this are refused: the
   * cost of storing, serialising and reading an item back follows how many values it holds, which the
   * byte limit alone does not bound (1 MB holds some 90,000 keys).
   */
  readonly maxValues?: number;
}

export type JsonFaultKind =
  'too-deep' | 'too-many-values' | 'lone-surrogate' | 'nul-character' | 'number-out-of-range' | 'unsafe-integer' | 'forbidden-key';

export interface JsonFault extends Violation {
  readonly kind: JsonFaultKind;
}

interface Frame {
  readonly value: unknown;
  readonly depth: number;
  readonly parent: Frame | undefined;
  readonly key: string | number | undefined;
}

/**
 * The first fault in a parsed JSON value, or undefined. `unsafeIntegers` are the values of integer
 * literals that JSON.parse could not keep exactly (see `unsafeIntegerLiterals`): the parsed value
 * alone cannot tell `9007199254740993` from `9007199254740992`.
 */
export function findJsonFault(
  value: unknown,
  limits: JsonLimits,
  unsafeIntegers: ReadonlySet<number> = new Set(),
  surrogates = true,
): JsonFault | undefined {
  const stack: Frame[] = [{ value, depth: 0, parent: undefined, key: undefined }];
  const maxValues = limits.maxValues ?? Number.POSITIVE_INFINITY;
  let values = 0;
  for (let frame = stack.pop(); frame !== undefined; frame = stack.pop()) {
    const current = frame.value;
    if (++values > maxValues) return fault('too-many-values', frame, `is past the ${maxValues} values a document may hold`);
    if (typeof current === 'string') {
      if (surrogates && hasLoneSurrogate(current))
        return fault('lone-surrogate', frame, 'contains a lone UTF-16 surrogate (invalid Unicode)');
      if (surrogates && current.includes('\0')) return fault('nul-character', frame, NUL_MESSAGE);
    } else if (typeof current === 'number') {
      if (!Number.isFinite(current)) return fault('number-out-of-range', frame, 'is a number outside the range of a double');
      if (unsafeIntegers.has(current)) {
        return fault('unsafe-integer', frame, 'is an integer beyond ±(2^53-1), which cannot be kept exactly; send it as a string');
      }
    } else if (typeof current === 'object' && current !== null) {
      const depth = frame.depth + 1;
      if (depth > limits.maxDepth) return fault('too-deep', frame, `nests deeper than ${limits.maxDepth} levels`);
      // Children are visited in order, each one value at least: those past the limit can only be
      // reached after the fault, so they are never pushed (a refused 480,000-element array was walked whole).
      const reachable = maxValues - values + 1;
      if (Array.isArray(current)) {
        for (let i = Math.min(current.length, reachable) - 1; i >= 0; i--) stack.push({ value: current[i], depth, parent: frame, key: i });
      } else {
        const keys = Object.keys(current);
        for (let i = Math.min(keys.length, reachable) - 1; i >= 0; i--) {
          const key = keys[i] as string;
          const child: Frame = { value: (current as Record<string, unknown>)[key], depth, parent: frame, key };
          if (surrogates && hasLoneSurrogate(key))
            return fault('lone-surrogate', child, 'is a key with a lone UTF-16 surrogate (invalid Unicode)');
          if (surrogates && key.includes('\0')) return fault('nul-character', child, `is a key that ${NUL_MESSAGE}`);
          if (key === '__proto__' || (key === 'constructor' && holdsPrototype(child.value)))
            return fault('forbidden-key', child, 'is a key that could reach an object prototype, which is not accepted');
          stack.push(child);
        }
      }
    }
  }
  return undefined;
}

// PostgreSQL can hold no NUL in text or jsonb: such an item was stored changed (U+FFFD in its view) or
// parked by the query view, while SQLite kept it. Refused on every database, data reads the same on each.
const NUL_MESSAGE = 'contains a NUL character (\\u0000), which is not accepted';

/** `"constructor": {"prototype": …}`, which merging code could turn into a prototype write. */
function holdsPrototype(value: unknown): boolean {
  return typeof value === 'object' && value !== null && Object.hasOwn(value, 'prototype');
}

/** True when a high surrogate lacks its low half, or a low one its high half. Linear, no regex. */
export function hasLoneSurrogate(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdfff) continue;
    if (unit >= 0xdc00) return true;
    const next = text.charCodeAt(i + 1);
    if (!(next >= 0xdc00 && next <= 0xdfff)) return true;
    i++;
  }
  return false;
}

/**
 * Whether parsing `text` can give a string with a surrogate code unit (only from a raw one or a
 * `\uD800`-`\uDFFF` escape) or a NUL (only from a `\u0000` escape). When not, `findJsonFault` may skip
 * looking for them. One native regex scan, linear.
 */
export function mayHoldSurrogates(text: string): boolean {
  return SURROGATE_SOURCE.test(text);
}

const SURROGATE_SOURCE = /[\uD800-\uDFFF]|\\u[dD][89a-fA-F]|\\u0000/;
// An integer literal a double may not hold has at least 16 digits.
const LONG_DIGIT_RUN = /[0-9]{16}/;

/**
 * The values of the integer literals (no exponent, no fraction but zeros) in JSON text that a double cannot
 * hold exactly. One pass over the text, skipping strings, when a native scan finds a run of digits
 * long enough.
 */
export function unsafeIntegerLiterals(text: string): Set<number> {
  const { outside, inItems } = unsafeIntegerLiteralsByItem(text, undefined);
  for (const values of inItems.values()) for (const value of values) outside.add(value);
  return outside;
}

/**
 * The same, told apart by where they stand: in which element of the top-level array field `itemsField`
 * (a batch's `events`), or outside it. A value says nothing of the literal it came from, so each batch
 * element is checked against its own: `12345678901234567890` in one would otherwise refuse the
 * `1.2345678901234567e19` of another, the same double.
 */
export function unsafeIntegerLiteralsByItem(
  text: string,
  itemsField: string | undefined,
): { outside: Set<number>; inItems: Map<number, Set<number>> } {
  const outside = new Set<number>();
  let inItems = new Map<number, Set<number>>();
  if (!LONG_DIGIT_RUN.test(text)) return { outside, inItems };
  let depth = 0;
  // The last string read at the top level, and the key it became at a colon.
  let lastString: [number, number] | undefined;
  let key: string | undefined;
  let item = -1; // the element of the items array being read, -1 outside it
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      i++;
      while (i < text.length && text.charCodeAt(i) !== 0x22) i += text.charCodeAt(i) === 0x5c /* \ */ ? 2 : 1;
      i++;
      if (depth === 1) lastString = [start, i];
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      const start = i;
      let integer = true;
      let fraction = false;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x2e /* . */) fraction = true;
        else if (d === 0x65 || d === 0x45)
          integer = false; // an exponent: a float, as written
        else if (d >= 0x30 && d <= 0x39) {
          // `9007199254740993.0` is that integer all the same.
          if (fraction && d !== 0x30) integer = false;
        } else if (d !== 0x2b && d !== 0x2d) break;
      }
      // Fifteen digits always fit; only longer literals are worth a Number().
      if (integer && i - start > 15) {
        const parsed = Number(text.slice(start, i));
        if (Number.isSafeInteger(parsed)) continue;
        if (item < 0) outside.add(parsed);
        else inItems.set(item, (inItems.get(item) ?? new Set()).add(parsed));
      }
    } else {
      if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
        if (c === 0x5b && depth === 1 && itemsField !== undefined && key === itemsField) {
          // A key given twice counts once, as JSON.parse keeps the last.
          inItems = new Map();
          item = 0;
        }
        depth++;
      } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
        depth--;
        if (depth === 1) item = -1;
      } else if (c === 0x3a /* : */ && depth === 1 && lastString) {
        key = JSON.parse(text.slice(lastString[0], lastString[1])) as string;
      } else if (c === 0x2c /* , */) {
        if (depth === 1) key = undefined;
        else if (depth === 2 && item >= 0) item++;
      }
      i++;
    }
  }
  return { outside, inItems };
}

function fault(kind: JsonFaultKind, frame: Frame, message: string): JsonFault {
  return { kind, path: pathOf(frame), message };
}

/** `payload.items[2]["odd key"]`; the root is `body`. */
function pathOf(frame: Frame): string {
  const segments: string[] = [];
  for (let at: Frame | undefined = frame; at?.key !== undefined; at = at.parent) {
    const key = at.key;
    if (typeof key === 'number') segments.push(`[${key}]`);
    else if (/^[A-Za-z_][\w-]*$/.test(key)) segments.push(at.parent?.key === undefined ? key : `.${key}`);
    else segments.push(`[${JSON.stringify(key)}]`);
  }
  return segments.length === 0 ? 'body' : segments.reverse().join('');
}
