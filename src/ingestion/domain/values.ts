import { ValidationError } from '../../shared/errors.js';
import { EVENT_TYPE_PATTERN, EVENT_TYPE_RULE } from '../../shared/contracts/event-type-rule.js';
import type { JsonObject } from '../../shared/events.js';
import { longerThan } from '../../shared/contracts/text-length.js';

/** Value objects of an ingested item: each parse either returns a valid value or throws a ValidationError. */
export type PartnerId = string & { readonly __brand: 'PartnerId' };
export type EventType = string & { readonly __brand: 'EventType' };
export type Payload = JsonObject & { readonly __brand: 'Payload' };
/** An ISO-8601 UTC instant with milliseconds. */
export type Timestamp = string & { readonly __brand: 'Timestamp' };

const MAX_ID_LENGTH = 255;
export const DEFAULT_EVENT_TYPE = 'data' as EventType;

export function parsePartnerId(value: unknown, path = 'partner_id'): PartnerId {
  // An integer id (`"app_id": 1`) names the same source as the string "1".
  const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
  if (typeof text !== 'string') throw invalid(path, 'must be a string');
  if (text.trim().length === 0) throw invalid(path, 'must not be empty');
  if (longerThan(text, MAX_ID_LENGTH)) throw invalid(path, `must be at most ${MAX_ID_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(text)) throw invalid(path, 'must not contain control characters');
  return text as PartnerId;
}

export function parseEventType(value: unknown, path = 'event_type'): EventType {
  if (value === undefined || value === null) return DEFAULT_EVENT_TYPE;
  if (typeof value !== 'string' || !EVENT_TYPE_PATTERN.test(value)) {
    throw invalid(path, EVENT_TYPE_RULE);
  }
  return value as EventType;
}

export function parsePayload(value: unknown, path = 'payload'): Payload {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(path, 'must be a JSON object');
  return value as Payload;
}

export function timestampOf(date: Date): Timestamp {
  return date.toISOString() as Timestamp;
}

function invalid(path: string, message: string): ValidationError {
  return new ValidationError('ingestion.invalid-item', `${path} ${message}`, [{ path, message }]);
}
