import { instantOf, trackingValues, type ExternalId, type Instant } from '../../shared/contracts/tracking-values.js';

/** Value objects of attribution: the tracking event's rules (read back from its events) and a conversion's value. */
export { INTERACTION_TYPES, instantOf } from '../../shared/contracts/tracking-values.js';
export type { ExternalId, Instant, InteractionType } from '../../shared/contracts/tracking-values.js';

export const INVALID_CONVERSION = 'attribution.invalid-conversion';
/** Far above any real order, and low enough that sums of values stay exact to the cent. */
export const MAX_CONVERSION_VALUE = 1e12;

const rules = trackingValues(INVALID_CONVERSION);
export const { parseExternalId, readExternalId, parseInteractionType, parseInstant, parseOccurredAt } = rules;

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

/**
 * Whose visitor attribution follows. Visitor ids are chosen by clients, so each namespace is kept
 * apart rather than joined into one text: the visitors the partner tracking API and
 * `POST /api/v1/tracking/conversions` name (one namespace, shared by every partner), and the SDK
 * users of each application. Two visitors are the same only when both parts are, whatever
 * characters the ids hold.
 */
export interface Visitor {
  /** The application whose SDK messages named the user; null for a visitor of the tracking API. */
  readonly appId: string | null;
  readonly id: ExternalId;
}

export const trackedVisitor = (id: ExternalId): Visitor => ({ appId: null, id });
export const sdkVisitor = (appId: string, id: ExternalId): Visitor => ({ appId, id });
export const sameVisitor = (a: Visitor, b: Visitor): boolean => a.appId === b.appId && a.id === b.id;
/** One text per visitor, for keys of maps: JSON keeps the two parts apart. */
export const visitorKey = (visitor: Visitor): string => JSON.stringify([visitor.appId, visitor.id]);
