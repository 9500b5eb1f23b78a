import { trackingValues } from '../../shared/contracts/tracking-values.js';

/** Value objects of a tracking event: each parse returns a valid value or throws a ValidationError naming its field. */
export { INTERACTION_TYPES, instantOf } from '../../shared/contracts/tracking-values.js';
export type { ExternalId, Instant, InteractionType } from '../../shared/contracts/tracking-values.js';
export type TrackedUrl = string & { readonly __brand: 'TrackedUrl' };

export const INVALID_EVENT = 'tracking.invalid-event';
const MAX_URL_LENGTH = 2048;
// eslint-disable-next-line no-control-regex
const WHITESPACE_OR_CONTROL = /[\s\u0000-\u001f\u007f]/;

const rules = trackingValues(INVALID_EVENT);
const invalid = rules.invalid;
export const { parseExternalId, parseInteractionType, parseOccurredAt } = rules;

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
  // As written, not as parsed: `https:///x` parses as https://x/, yet names no host.
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '' || !HOST_AFTER_SCHEME.test(value)) {
    throw invalid(path, 'must be an absolute http or https URL');
  }
  // Credentials in a tracked URL would be copied into every view and export of it.
  if (url.username !== '' || url.password !== '') throw invalid(path, 'must not contain credentials');
  return value as TrackedUrl;
}

const HOST_AFTER_SCHEME = /^https?:\/\/[^/?#]/i;

function urlOf(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}
