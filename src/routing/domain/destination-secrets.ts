import { ValidationError } from '../../shared/errors.js';

/**
 * Credentials in a destination's configuration: each webhook header value, and the password of a
 * queue broker's URL (a NATS URL's lone user part too: that is its token). They are sealed apart from
 * the rule; the rule, its events and its row hold a reference in their place, and answers a mask.
 */

/** What answers show for a credential; sent back in a PUT or PATCH, it keeps the credential as it is. */
export const SECRET_MASK = '••••••';

/** How the rule refers to a sealed credential: this prefix and 32 hex digits (plain ASCII: it stands in headers and URLs). */
export const SECRET_REFERENCE_PREFIX = 'sealed_';
const REFERENCE = /^sealed_[0-9a-f]{32}$/;
export const isSecretReference = (value: string) => REFERENCE.test(value);

/** A credential's place in the configuration: `url`, or `headers.<name>`. */
type Slot = string;

/** A rule's destination, or one as a request gives it (not validated yet: anything of another shape is left alone). */
export type DestinationLike = { readonly destination_type: unknown; readonly destination_config?: unknown };

const recordOf = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;

/** Where in a URL its credential lies: the password, or a NATS URL's lone user part (its token). */
function credentialSpan(url: string, broker: unknown): { start: number; end: number } | undefined {
  const scheme = url.indexOf('://');
  if (scheme < 0) return undefined;
  const authorityStart = scheme + 3;
  const authorityEnd = [...'/?#']
    .map((c) => url.indexOf(c, authorityStart))
    .reduce((end, at) => (at >= 0 && at < end ? at : end), url.length);
  const at = url.lastIndexOf('@', authorityEnd - 1);
  if (at < authorityStart) return undefined;
  const colon = url.indexOf(':', authorityStart);
  if (colon >= 0 && colon < at) return colon + 1 < at ? { start: colon + 1, end: at } : undefined;
  return broker === 'nats' && at > authorityStart ? { start: authorityStart, end: at } : undefined;
}

/** The credentials of a destination by slot, as they stand (clear values, references or masks). */
export function credentialsOf({ destination_type, destination_config }: DestinationLike): Map<Slot, string> {
  const found = new Map<Slot, string>();
  const config = recordOf(destination_config) ?? {};
  const headers = recordOf(config.headers);
  if (destination_type === 'webhook' && headers) {
    for (const [name, value] of Object.entries(headers)) if (typeof value === 'string') found.set(`headers.${name}`, value);
  }
  if (destination_type === 'queue' && typeof config.url === 'string') {
    const span = credentialSpan(config.url, config.broker);
    if (span) found.set('url', config.url.slice(span.start, span.end));
  }
  return found;
}

/** The configuration with each credential replaced by `replace(slot, value)`; everything else as it is. */
export function withCredentials<T extends DestinationLike>(destination: T, replace: (slot: Slot, value: string) => string): T {
  const config = recordOf(destination.destination_config);
  const headers = recordOf(config?.headers);
  if (destination.destination_type === 'webhook' && config && headers) {
    const replaced = Object.entries(headers).map(([name, value]) => [
      name,
      typeof value === 'string' ? replace(`headers.${name}`, value) : value,
    ]);
    return { ...destination, destination_config: { ...config, headers: Object.fromEntries(replaced) } };
  }
  if (destination.destination_type === 'queue' && config && typeof config.url === 'string') {
    const span = credentialSpan(config.url, config.broker);
    if (!span) return destination;
    const url = config.url.slice(0, span.start) + replace('url', config.url.slice(span.start, span.end)) + config.url.slice(span.end);
    return { ...destination, destination_config: { ...config, url } };
  }
  return destination;
}

/** As answers show a destination: every credential masked, sealed or (saved before sealing existed) not. */
export const maskedDestination = <T extends DestinationLike>(destination: T): T => withCredentials(destination, () => SECRET_MASK);

// A client may send a URL back percent-encoded.
const isMask = (value: string) => value === SECRET_MASK || safeDecode(value) === SECRET_MASK;
function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * A destination as given, each mask replaced by the credential it stands for in `current` (the rule's
 * destination before the change, its credentials in clear): a mask with no credential behind it is refused.
 */
export function unmasked<T extends DestinationLike>(given: T, current: DestinationLike | undefined): T {
  const known = current ? credentialsOf(current) : new Map<Slot, string>();
  // A reference left in `current` is a credential that did not open: a mask cannot keep it.
  for (const [slot, value] of known) if (isSecretReference(value)) known.delete(slot);
  const missing: Slot[] = [];
  const result = withCredentials(given, (slot, value) => {
    if (!isMask(value)) return value;
    const kept = known.get(slot);
    if (kept === undefined) missing.push(slot);
    return kept ?? value;
  });
  if (missing.length > 0) {
    const violations = missing.map((slot) => ({
      path: `destination_config.${slot}`,
      message: `is the mask ${SECRET_MASK} of a credential the rule does not have: give the value itself`,
    }));
    throw new ValidationError('routing.invalid-destination', violations.map((v) => `${v.path} ${v.message}`).join('; '), violations);
  }
  return result;
}
