import { instantOf, trackingValues, type Instant } from '../../shared/contracts/tracking-values.js';

/** Value objects of attribution: the tracking event's rules (read back from its events) and a conversion's value. */
export { INTERACTION_TYPES, instantOf } from '../../shared/contracts/tracking-values.js';
export type { ExternalId, Instant, InteractionType } from '../../shared/contracts/tracking-values.js';

export const INVALID_CONVERSION = 'attribution.invalid-conversion';
/** Far above any real order, and low enough that sums of values stay exact to the cent. */
export const MAX_CONVERSION_VALUE = 1e12;

const rules = trackingValues(INVALID_CONVERSION);
export const { parseExternalId, parseInteractionType, parseInstant, parseOccurredAt } = rules;

/** The money (or points) a conversion brought in; refunds are not conversions. */
export function parseConversionValue(value: unknown, path = 'value'): number {
  if (value === undefined || value === null) throw rules.invalid(path, 'is required');
  if (typeof value !== 'number' || !Number.isFinite(value)) throw rules.invalid(path, 'must be a number');
  if (value < 0) throw rules.invalid(path, 'must not be negative');
  if (value > MAX_CONVERSION_VALUE) throw rules.invalid(path, `must be at most ${MAX_CONVERSION_VALUE}`);
  return value;
}

/** The instant `ms` milliseconds after (or, negative, before) `at`. */
export function shiftInstant(at: Instant, ms: number): Instant {
  return instantOf(new Date(Date.parse(at) + ms));
}
