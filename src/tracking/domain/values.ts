import { ValidationError } from '../../shared/errors.js';

/** Value objects of a tracking event: each parse returns a valid value or throws a ValidationError naming its field. */
export type ExternalId = string & { readonly __brand: 'ExternalId' };
export type TrackedUrl = string & { readonly __brand: 'TrackedUrl' };
/** An ISO-8601 UTC instant with milliseconds: text order is time order. */
export type Instant = string & { readonly __brand: 'Instant' };

export const INTERACTION_TYPES = ['click', 'view', 'engagement'] as const;
export type InteractionType = (typeof INTERACTION_TYPES)[number];

export const INVALID_EVENT = 'tracking.invalid-event';
const MAX_ID_LENGTH = 255;
const MAX_URL_LENGTH = 2048;
// Clients' clocks drift; an event a few minutes "from the future" is skew, one hours ahead is a bug.
const MAX_CLOCK_SKEW_MS = 5 * 60_000;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$/i;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;
// eslint-disable-next-line no-control-regex
const WHITESPACE_OR_CONTROL = /[\s\u0000-\u001f\u007f]/;

/** A partner, campaign or visitor id: opaque text chosen by the client. */
export function parseExternalId(value: unknown, path: string): ExternalId {
  if (value === undefined || value === null) throw invalid(path, 'is required');
  if (typeof value !== 'string') throw invalid(path, 'must be a string');
  if (value.trim().length === 0) throw invalid(path, 'must not be empty');
  if (value.length > MAX_ID_LENGTH) throw invalid(path, `must be at most ${MAX_ID_LENGTH} characters`);
  if (CONTROL_CHARACTERS.test(value)) throw invalid(path, 'must not contain control characters');
  return value as ExternalId;
}

export function parseInteractionType(value: unknown, path = 'interaction_type'): InteractionType {
  if (value === undefined || value === null) throw invalid(path, 'is required');
  if (typeof value !== 'string' || !(INTERACTION_TYPES as readonly string[]).includes(value)) {
    throw invalid(path, `must be one of ${INTERACTION_TYPES.join(', ')}`);
  }
  return value as InteractionType;
}

/**
 * Only absolute http(s) URLs: a relative one cannot be followed, and `javascript:` or `data:` URLs
 * would turn a click report into a script any dashboard that links it might run.
 */
export function parseTrackedUrl(value: unknown, path: string): TrackedUrl {
  if (value === undefined || value === null) throw invalid(path, 'is required');
  if (typeof value !== 'string') throw invalid(path, 'must be a string');
  if (value.length > MAX_URL_LENGTH) throw invalid(path, `must be at most ${MAX_URL_LENGTH} characters`);
  if (WHITESPACE_OR_CONTROL.test(value)) throw invalid(path, 'must not contain whitespace or control characters');
  const url = urlOf(value);
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    throw invalid(path, 'must be an absolute http or https URL');
  }
  // Credentials in a tracked URL would be copied into every view and export of it.
  if (url.username !== '' || url.password !== '') throw invalid(path, 'must not contain credentials');
  return value as TrackedUrl;
}

/** When the interaction happened, by the client's account; absent, it happened when it reached us. */
export function parseOccurredAt(value: unknown, receivedAt: Date, path = 'occurred_at'): Instant {
  if (value === undefined || value === null) return instantOf(receivedAt);
  if (typeof value !== 'string') throw invalid(path, 'must be an RFC 3339 date-time string');
  const match = RFC3339.exec(value);
  const at = new Date(value);
  if (!match || Number.isNaN(at.getTime()) || !isCalendarDate(Number(match[1]), Number(match[2]), Number(match[3]))) {
    throw invalid(path, 'must be an RFC 3339 date-time such as 2026-11-24T10:00:00Z');
  }
  if (at.getTime() < 0) throw invalid(path, 'must not be before 1970');
  if (at.getTime() > receivedAt.getTime() + MAX_CLOCK_SKEW_MS) throw invalid(path, 'must not be in the future');
  return instantOf(at);
}

export function instantOf(date: Date): Instant {
  return date.toISOString() as Instant;
}

function urlOf(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

// Date parsing rolls 2026-02-30 over to March 2nd; a date that does not exist is a client bug to report.
function isCalendarDate(year: number, month: number, day: number): boolean {
  return month >= 1 && month <= 12 && day >= 1 && day <= new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function invalid(path: string, message: string): ValidationError {
  return new ValidationError(INVALID_EVENT, `${path} ${message}`, [{ path, message }]);
}
