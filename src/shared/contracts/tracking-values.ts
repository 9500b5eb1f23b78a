import { ValidationError } from '../errors.js';
import { longerThan } from './text-length.js';

/**
 * The value rules of the tracking event's published language: ids, interaction types and instants.
 * Tracking applies them when it records an event, attribution when it reads one back; each reports
 * violations under its own error code.
 */
export type ExternalId = string & { readonly __brand: 'ExternalId' };
/** An ISO-8601 UTC instant with milliseconds: text order is time order. */
export type Instant = string & { readonly __brand: 'Instant' };

export const INTERACTION_TYPES = ['click', 'view', 'engagement'] as const;
export type InteractionType = (typeof INTERACTION_TYPES)[number];

const MAX_ID_LENGTH = 255;
// Clients' clocks drift; an event a few minutes "from the future" is skew, one hours ahead is a bug.
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$/i;
// C0, DEL and C1 (U+0080–U+009F: NEL, the one-byte terminal escape CSI…), as event types and names refuse them.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;
// What ids were checked against before C1 was refused: an event stored then is read back all the same.
// eslint-disable-next-line no-control-regex
const STORED_CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

export function instantOf(date: Date): Instant {
  return date.toISOString() as Instant;
}

/** The parsers, reporting violations with the given error code. */
export function trackingValues(code: string) {
  const invalid = (path: string, message: string) => new ValidationError(code, `${path} ${message}`, [{ path, message }]);

  const externalId =
    (controls: RegExp) =>
    (value: unknown, path: string): ExternalId => {
      if (value === undefined || value === null) throw invalid(path, 'is required');
      if (typeof value !== 'string') throw invalid(path, 'must be a string');
      if (value.trim().length === 0) throw invalid(path, 'must not be empty');
      if (longerThan(value, MAX_ID_LENGTH)) throw invalid(path, `must be at most ${MAX_ID_LENGTH} characters`);
      if (controls.test(value)) throw invalid(path, 'must not contain control characters');
      return value as ExternalId;
    };
  /** A partner, campaign or visitor id: opaque text chosen by the client. */
  const parseExternalId = externalId(CONTROL_CHARACTERS);
  /** An id read back from a stored event, by the rule it was stored under. */
  const readExternalId = externalId(STORED_CONTROL_CHARACTERS);

  const parseInteractionType = (value: unknown, path = 'interaction_type'): InteractionType => {
    if (value === undefined || value === null) throw invalid(path, 'is required');
    if (typeof value !== 'string' || !(INTERACTION_TYPES as readonly string[]).includes(value)) {
      throw invalid(path, `must be one of ${INTERACTION_TYPES.join(', ')}`);
    }
    return value as InteractionType;
  };

  /** An RFC 3339 date-time, normalised to UTC so that instants compare as text in SQL and in code. */
  const parseInstant = (value: unknown, path: string): Instant => {
    if (typeof value !== 'string') throw invalid(path, 'must be an RFC 3339 date-time string');
    const match = RFC3339.exec(value);
    const at = new Date(value);
    if (!match || Number.isNaN(at.getTime()) || !isCalendarDate(Number(match[1]), Number(match[2]), Number(match[3]))) {
      throw invalid(path, 'must be an RFC 3339 date-time such as 2026-11-24T10:00:00Z');
    }
    if (at.getTime() < 0) throw invalid(path, 'must not be before 1970');
    return instantOf(at);
  };

  /** When it happened, by the client's account; absent, it happened when it reached us. */
  const parseOccurredAt = (value: unknown, receivedAt: Date, path = 'occurred_at'): Instant => {
    if (value === undefined || value === null) return instantOf(receivedAt);
    const at = parseInstant(value, path);
    if (Date.parse(at) > receivedAt.getTime() + MAX_CLOCK_SKEW_MS) throw invalid(path, 'must not be in the future');
    return at;
  };

  return { invalid, parseExternalId, readExternalId, parseInteractionType, parseInstant, parseOccurredAt };
}

// Date parsing rolls 2026-02-30 over to March 2nd; a date that does not exist is a client bug to report.
export function isCalendarDate(year: number, month: number, day: number): boolean {
  return month >= 1 && month <= 12 && day >= 1 && day <= new Date(Date.UTC(year, month, 0)).getUTCDate();
}
