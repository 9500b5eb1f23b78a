import type { Violation } from '../errors.js';

/**
 * Request bodies hold only the fields they document: a misspelled field would otherwise be dropped
 * without a word, and `evnet_type` store the item as `data`, or `condtion` route every event.
 */
export const UNKNOWN_FIELD = 'is not a field of this request (misspelled?)';

/** One violation per field of `value` that `known` does not name, at `prefix.field`. */
export function unknownFields(value: object, known: readonly string[], prefix = ''): Violation[] {
  return Object.keys(value)
    .filter((name) => !known.includes(name))
    .map((name) => ({ path: prefix ? `${prefix}.${name}` : name, message: UNKNOWN_FIELD }));
}
