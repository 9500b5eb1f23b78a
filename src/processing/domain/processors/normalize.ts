import type { JsonValue } from '../../../shared/events.js';
import { ok, type Processor } from '../processor.js';

// Date-times as people send them: "2026-11-24 10:00", "2026-11-24T10:00:00+02:00", with or without seconds and zone.
const DATE_TIME = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+-]\d{2}:?\d{2})?$/i;
// An address is at most 254 characters (RFC 5321); nothing longer is looked at as one.
const MAX_EMAIL_LENGTH = 254;
const WHITESPACE = /\s/;
// RFC 5322's atext and dots (and, as SMTPUTF8 allows, any non-ASCII), then host-name characters.
const LOCAL_PART = /^[\w!#$%&'*+/=?^`{|}~.\u0080-\uffff-]+$/;
const DOMAIN = /^[A-Za-z0-9.\u0080-\uffff-]+$/;

/**
 * Trims strings, rewrites date-times as canonical UTC ISO-8601 and lower-cases e-mail addresses, at
 * any depth. Objects and arrays are copied only where something changes: copying every one made
 * each normalize step of a pipeline cost about 100 ms on a payload of 100,000 keys, and a
 * pipeline may hold 20 steps (2 s of the storage thread for one item). Normalizing again what
 * normalize wrote changes nothing, so the steps after the first only read.
 */
export const normalize: Processor = {
  name: 'normalize',
  run: (input) => ok(normalizeObject(input)),
};

function normalizeValue(value: JsonValue): JsonValue {
  if (typeof value === 'string') return normalizeString(value);
  if (Array.isArray(value)) return normalizeArray(value);
  if (value !== null && typeof value === 'object') return normalizeObject(value);
  return value;
}

function normalizeArray(input: JsonValue[]): JsonValue[] {
  let output: JsonValue[] | undefined;
  for (let i = 0; i < input.length; i++) {
    const value = input[i] as JsonValue;
    const normalized = normalizeValue(value);
    if (normalized !== value) (output ??= input.slice())[i] = normalized;
  }
  return output ?? input;
}

function normalizeObject(input: { [key: string]: JsonValue }): { [key: string]: JsonValue } {
  let output: { [key: string]: JsonValue } | undefined;
  for (const key of Object.keys(input)) {
    const value = input[key] as JsonValue;
    const normalized = normalizeValue(value);
    // Defined, not assigned: a key named __proto__ stays a key.
    if (normalized !== value)
      Object.defineProperty((output ??= { ...input }), key, { value: normalized, writable: true, enumerable: true, configurable: true });
  }
  return output ?? input;
}

function normalizeString(raw: string): string {
  const value = raw.trim();
  if (mayBeDateTime(value)) {
    const known = dateTimes.get(value);
    if (known !== undefined) return known;
    const dateTime = normalizeDateTime(value);
    if (dateTime !== undefined) return remembered(value, dateTime);
  }
  if (isEmailAddress(value)) return value.toLowerCase();
  return value;
}

/**
 * Date-times normalized lately, by what was sent. A tracking-API batch repeats the same few instants
 * in every message (`sentAt`, `receivedAt`, often `timestamp`), and parsing each again was a tenth of
 * what the storage thread spent on such a message. Bounded, and emptied when full.
 */
const dateTimes = new Map<string, string>();
const REMEMBERED_DATE_TIMES = 512;

function remembered(sent: string, normalized: string): string {
  if (dateTimes.size >= REMEMBERED_DATE_TIMES) dateTimes.clear();
  dateTimes.set(sent, normalized);
  return normalized;
}

/** `YYYY-MM-DD` and a time, at the lengths DATE_TIME allows: the one check every other string pays. */
const mayBeDateTime = (value: string) =>
  value.length >= 16 && value.length <= 35 && value.charCodeAt(4) === 45 && value.charCodeAt(7) === 45;

/** The instant as canonical UTC ISO-8601, or undefined when the string is no date-time of a real day. */
function normalizeDateTime(value: string): string | undefined {
  const dateTime = DATE_TIME.exec(value);
  if (!dateTime || !isCalendarDate(dateTime[1] ?? '')) return undefined;
  const [, date, time, zone] = dateTime;
  const offset = !zone ? 'Z' : zone.toUpperCase() === 'Z' ? 'Z' : zone.includes(':') ? zone : `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const parsed = new Date(`${date}T${time}${offset}`);
  // Year 0000 or 9999 moved across midnight by its zone would be written -000001-… or +010000-…
  const year = parsed.getUTCFullYear();
  if (Number.isNaN(parsed.getTime()) || year < 0 || year > 9999) return undefined;
  return withFraction(parsed.toISOString(), time ?? '');
}

/**
 * Digits past the millisecond kept as sent: `Date` holds milliseconds, and a zone moves an instant by
 * whole minutes, so the fraction is the same in UTC.
 */
function withFraction(iso: string, time: string): string {
  const fraction = time.split('.')[1] ?? '';
  return fraction.length > 3 ? `${iso.slice(0, -4)}${fraction}Z` : iso;
}

/**
 * Whether `YYYY-MM-DD` names a day that exists: `Date` rolls 2026-02-30 over to 2026-03-02, and a
 * string that only looks like a date is left as sent, not changed into another day.
 */
function isCalendarDate(date: string): boolean {
  const [year, month, day] = date.split('-').map(Number) as [number, number, number];
  if (month < 1 || month > 12 || day < 1) return false;
  return day <= new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/**
 * `local@domain.tld`: one `@`, no whitespace, a dot inside the domain, and only the characters an
 * address may hold on each side, so that a URL with user info (`https://Ann@Host/Path`), `mailto:…`
 * or `user@host:secret` keeps its case. Found by scanning rather than with
 * `/^[^\s@]+@[^\s@]+\.[^\s@]+$/`, which backtracks over every dot of the domain and took seconds on a
 * long string of dots, holding up every write behind it; the two classes below are single runs.
 */
function isEmailAddress(value: string): boolean {
  if (value.length > MAX_EMAIL_LENGTH) return false;
  const at = value.indexOf('@');
  if (at < 1 || value.indexOf('@', at + 1) !== -1 || WHITESPACE.test(value)) return false;
  const dot = value.indexOf('.', at + 2);
  if (dot === -1 || dot === value.length - 1) return false;
  return LOCAL_PART.test(value.slice(0, at)) && DOMAIN.test(value.slice(at + 1));
}
