import { ValidationError } from '../../shared/errors.js';
import { sha256 } from '../../shared/fingerprint.js';

/**
 * An ordering key names where in the routed document (`{ app_id, event_type, payload, metadata }`)
 * the value that groups deliveries lives. Only paths that can hold a value are accepted: a field of
 * the payload, one of the metadata fields Intake records, or the event type itself.
 */
const METADATA_FIELDS = ['channel', 'received_at', 'ip', 'user_agent', 'correlation_id', 'key_id'];
const SEGMENT = /^[A-Za-z0-9_$-][A-Za-z0-9_$@:-]{0,127}$/;
const MAX_LENGTH = 256;
const PROTOTYPE_KEYS = new Set(Object.getOwnPropertyNames(Object.prototype));

export function parseOrderingKey(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  const problem = (message: string) =>
    new ValidationError('routing.invalid-ordering-key', `ordering_key ${message}`, [{ path: 'ordering_key', message }]);
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_LENGTH)
    throw problem(`must be null or a path of at most ${MAX_LENGTH} characters`);
  const [root, ...rest] = value.split('.');
  if (root === 'event_type' || root === 'app_id') {
    if (rest.length > 0) throw problem(`cannot go below ${root}, which is a string`);
    return value;
  }
  if (root === 'metadata') {
    if (rest.length !== 1 || !METADATA_FIELDS.includes(rest[0] ?? ''))
      throw problem(`can name one of metadata.${METADATA_FIELDS.join(', metadata.')}`);
    return value;
  }
  if (root !== 'payload') throw problem('must start with payload., metadata., or be event_type or app_id');
  if (rest.length === 0) throw problem('must name a field inside the payload, not the whole payload');
  if (rest.length > 16 || !rest.every((segment) => SEGMENT.test(segment)))
    throw problem('has an empty or invalid segment (letters, digits, _ - $ @ : up to 16 levels)');
  // As in rule conditions: no key of a payload can be one of these (the JSON limits refuse __proto__).
  if (rest.some((segment) => PROTOTYPE_KEYS.has(segment))) throw problem('may not name an object prototype key');
  return value;
}

/**
 * The key's value in one document, as text; undefined when the document has no scalar there
 * (such a delivery is not ordered against any other).
 */
export function orderingKeyOf(path: string, document: object): string | undefined {
  let current: unknown = document;
  for (const segment of path.split('.')) {
    if (typeof current !== 'object' || current === null || Array.isArray(current)) return undefined;
    if (!Object.hasOwn(current, segment)) return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  if (typeof current === 'string') return bounded(`s:${current}`);
  if (typeof current === 'number' || typeof current === 'boolean') return `${typeof current}:${String(current)}`;
  return undefined;
}

/** Longer key values are kept as their digest: equal values stay equal, and the key fits an index row. */
export const MAX_ORDERING_KEY_BYTES = 256;

/**
 * A key as it is stored: PostgreSQL refuses an index row past 2,704 bytes, and a value of a few KB failed
 * the whole event's routing, its other rules' deliveries included.
 */
export const bounded = (key: string): string => (Buffer.byteLength(key) <= MAX_ORDERING_KEY_BYTES ? key : `h:${sha256(key)}`);
