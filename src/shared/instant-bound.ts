/**
 * Time bounds as the stored instants compare: ISO-8601 text in UTC with milliseconds, which sorts as
 * time only within the years 0000 to 9999 (`+010000-…` sorts before `2026-…`).
 */
const FIRST = Date.parse('0000-01-01T00:00:00.000Z');
const LAST = Date.parse('9999-12-31T23:59:59.999Z');

/** Digits past the millisecond, which Date.parse drops: "" when there are none worth keeping. */
function subMillisecond(dateTime: string): string {
  const fraction = /\.(\d+)/.exec(dateTime)?.[1] ?? '';
  return fraction.slice(3).replace(/0+$/, '');
}

/**
 * A date-time bound as stored-instant text. `up` rounds a fraction of a millisecond up, for a bound
 * that keeps instants at or after it (`from`) or before it (`to`); `down` drops it, for "at or before"
 * (`as_of`). Instants past the year 9999 or before 0000 become its last or first millisecond.
 */
export function instantBound(dateTime: string, round: 'up' | 'down'): string {
  let millis = Date.parse(dateTime);
  if (round === 'up' && subMillisecond(dateTime) !== '') millis += 1;
  return new Date(Math.min(LAST, Math.max(FIRST, millis))).toISOString();
}

/** Whether `a` is strictly before `b`, to the last digit given (not only to the millisecond). */
export function isBefore(a: string, b: string): boolean {
  const [ma, mb] = [Date.parse(a), Date.parse(b)];
  if (ma !== mb) return ma < mb;
  return subMillisecond(a).padEnd(9, '0') < subMillisecond(b).padEnd(9, '0');
}
