import { ValidationError } from '../../shared/errors.js';

/**
 * Value objects of attribution. Tracking has its own copies of the id and time rules: contexts share
 * events, not code, and attribution must be able to read events from a tracking service it does not ship with.
 */
export type ExternalId = string & { readonly __brand: 'ExternalId' };
/** An ISO-8601 UTC instant with milliseconds: text order is time order. */
export type Instant = string & { readonly __brand: 'Instant' };

export const INTERACTION_TYPES = ['click', 'view', 'engagement'] as const;
export type InteractionType = (typeof INTERACTION_TYPES)[number];

export const INVALID_CONVERSION = 'attribution.invalid-conversion';
const MAX_ID_LENGTH = 255;
/** Far above any real order, and low enough that sums of values stay exact to the cent. */
export const MAX_CONVERSION_VALUE = 1e12;
// Clients' clocks drift; an event a few minutes "from the future" is skew, one hours ahead is a bug.
const MAX_CLOCK_SKEW_MS = 5 * 60_000;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$/i;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

export function parseExternalId(value: unknown, path: string): ExternalId {
  if (value === undefined || value === null) throw invalid(path, 'is required');
  if (typeof value !== 'string') throw invalid(path, 'must be a string');
  if (value.trim().length === 0) throw invalid(path, 'must not be empty');
  if (value.length > MAX_ID_LENGTH) throw invalid(path, `must be at most ${MAX_ID_LENGTH} characters`);
  if (CONTROL_CHARACTERS.test(value)) throw invalid(path, 'must not contain control characters');
  return value as ExternalId;
}

export function parseInteractionType(value: unknown, path = 'interaction_type'): InteractionType {
  if (typeof value !== 'string' || !(INTERACTION_TYPES as readonly string[]).includes(value)) {
    throw invalid(path, `must be one of ${INTERACTION_TYPES.join(', ')}`);
  }
  return value as InteractionType;
}

/** The money (or points) a conversion brought in; refunds are not conversions. */
export function parseConversionValue(value: unknown, path = 'value'): number {
  if (value === undefined || value === null) throw invalid(path, 'is required');
  if (typeof value !== 'number' || !Number.isFinite(value)) throw invalid(path, 'must be a number');
  if (value < 0) throw invalid(path, 'must not be negative');
  if (value > MAX_CONVERSION_VALUE) throw invalid(path, `must be at most ${MAX_CONVERSION_VALUE}`);
  return value;
}

/** When it happened, by the client's account; absent, it happened when it reached us. */
export function parseOccurredAt(value: unknown, receivedAt: Date, path = 'occurred_at'): Instant {
  if (value === undefined || value === null) return instantOf(receivedAt);
  const at = parseInstant(value, path);
  if (Date.parse(at) > receivedAt.getTime() + MAX_CLOCK_SKEW_MS) throw invalid(path, 'must not be in the future');
  return at;
}

/** An RFC 3339 date-time, normalised to UTC so that instants compare as text in SQL and in code. */
export function parseInstant(value: unknown, path: string): Instant {
  if (typeof value !== 'string') throw invalid(path, 'must be an RFC 3339 date-time string');
  const match = RFC3339.exec(value);
  const at = new Date(value);
  if (!match || Number.isNaN(at.getTime()) || !isCalendarDate(Number(match[1]), Number(match[2]), Number(match[3]))) {
    throw invalid(path, 'must be an RFC 3339 date-time such as 2026-11-24T10:00:00Z');
  }
  if (at.getTime() < 0) throw invalid(path, 'must not be before 1970');
  return instantOf(at);
}

export function instantOf(date: Date): Instant {
  return date.toISOString() as Instant;
}

/** The instant `ms` milliseconds after (or, negative, before) `at`. */
export function shiftInstant(at: Instant, ms: number): Instant {
  return instantOf(new Date(Date.parse(at) + ms));
}

// Date parsing rolls 2026-02-30 over to March 2nd; a date that does not exist is a client bug to report.
function isCalendarDate(year: number, month: number, day: number): boolean {
  return month >= 1 && month <= 12 && day >= 1 && day <= new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function invalid(path: string, message: string): ValidationError {
  return new ValidationError(INVALID_CONVERSION, `${path} ${message}`, [{ path, message }]);
}
