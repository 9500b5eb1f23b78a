import { ValidationError } from '../../shared/errors.js';

/**
 * Credentials in a destination's configuration: each webhook header value, the value of a webhook
 * URL's query parameter named like a credential (`?token=`, `?api_key=`, `?code=`), and the password
 * of a queue broker's URL (a NATS URL's lone user part too: that is its token). They are sealed apart
 * from the rule; the rule, its events and its row hold a reference in their place, and answers a mask.
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
function credentialSpan(url: string, from: number, to: number, broker: unknown): { start: number; end: number } | undefined {
  const scheme = url.indexOf('://', from);
  if (scheme < 0 || scheme >= to) return undefined;
  const authorityStart = scheme + 3;
  const authorityEnd = [...'/?#'].map((c) => url.indexOf(c, authorityStart)).reduce((end, at) => (at >= 0 && at < end ? at : end), to);
  const at = url.lastIndexOf('@', authorityEnd - 1);
  if (at < authorityStart) return undefined;
  const colon = url.indexOf(':', authorityStart);
  if (colon >= 0 && colon < at) return colon + 1 < at ? { start: colon + 1, end: at } : undefined;
  return broker === 'nats' && at > authorityStart ? { start: authorityStart, end: at } : undefined;
}

/**
 * The credentials of a broker URL, each server's of a list (`nats://a@h1,nats://b@h2`, as the address
 * policy reads it): slot `url` for one server, `url[i]` for the i-th of several.
 */
function urlCredentials(url: string, broker: unknown): Array<{ slot: Slot; start: number; end: number }> {
  const servers: Array<[number, number]> = [];
  for (let from = 0; from <= url.length;) {
    const comma = url.indexOf(',', from);
    const to = comma < 0 ? url.length : comma;
    servers.push([from, to]);
    from = to + 1;
  }
  return servers.flatMap(([from, to], i) => {
    const span = credentialSpan(url, from, to, broker);
    return span ? [{ slot: servers.length === 1 ? 'url' : `url[${i}]`, ...span }] : [];
  });
}

/**
 * Query parameters whose value is a credential, as receivers that authenticate by URL name them: a name
 * whose last word is one of these (`token`, `access_token`, `x-api-key`, `private_token`), or one of the
 * whole names after them.
 */
const CREDENTIAL_WORDS = new Set(['token', 'key', 'secret', 'password', 'pass', 'signature', 'sig', 'jwt']);
const CREDENTIAL_NAMES = new Set(['apikey', 'auth', 'code']);
const isCredentialParameter = (name: string) => {
  const lower = name.toLowerCase();
  return CREDENTIAL_NAMES.has(lower) || CREDENTIAL_WORDS.has(lower.slice(Math.max(lower.lastIndexOf('_'), lower.lastIndexOf('-')) + 1));
};

/** The values of a webhook URL's credential parameters: slot `url.query.<name>` (`…<name>[i]` for a name repeated). */
function queryCredentials(url: string): Array<{ slot: Slot; start: number; end: number }> {
  const query = url.indexOf('?');
  if (query < 0) return [];
  const fragment = url.indexOf('#', query);
  const end = fragment < 0 ? url.length : fragment;
  const found: Array<{ slot: Slot; start: number; end: number }> = [];
  const seen = new Map<string, number>();
  for (let from = query + 1; from < end;) {
    const amp = url.indexOf('&', from);
    const to = amp < 0 || amp > end ? end : amp;
    const equals = url.indexOf('=', from);
    if (equals >= 0 && equals < to && equals + 1 < to) {
      const name = safeDecode(url.slice(from, equals));
      if (isCredentialParameter(name)) {
        const repeat = seen.get(name) ?? 0;
        seen.set(name, repeat + 1);
        found.push({ slot: `url.query.${name}${repeat === 0 ? '' : `[${repeat}]`}`, start: equals + 1, end: to });
      }
    }
    from = to + 1;
  }
  return found;
}

/** A URL with the given spans of it replaced by `replace(slot, value)`. */
function replacedSpans(
  url: string,
  spans: ReadonlyArray<{ slot: Slot; start: number; end: number }>,
  replace: (slot: Slot, value: string) => string,
) {
  let result = '';
  let done = 0;
  for (const { slot, start, end } of spans) {
    result += url.slice(done, start) + replace(slot, url.slice(start, end));
    done = end;
  }
  return result + url.slice(done);
}

/** The credentials of a destination by slot, as they stand (clear values, references or masks). */
export function credentialsOf({ destination_type, destination_config }: DestinationLike): Map<Slot, string> {
  const found = new Map<Slot, string>();
  const config = recordOf(destination_config) ?? {};
  const headers = recordOf(config.headers);
  if (destination_type === 'webhook' && headers) {
    for (const [name, value] of Object.entries(headers)) if (typeof value === 'string') found.set(`headers.${name}`, value);
  }
  if (destination_type === 'webhook' && typeof config.url === 'string') {
    for (const { slot, start, end } of queryCredentials(config.url)) found.set(slot, config.url.slice(start, end));
  }
  if (destination_type === 'queue' && typeof config.url === 'string') {
    for (const { slot, start, end } of urlCredentials(config.url, config.broker)) found.set(slot, config.url.slice(start, end));
  }
  return found;
}

/** The configuration with each credential replaced by `replace(slot, value)`; everything else as it is. */
export function withCredentials<T extends DestinationLike>(destination: T, replace: (slot: Slot, value: string) => string): T {
  const config = recordOf(destination.destination_config);
  if (destination.destination_type === 'webhook' && config) {
    const headers = recordOf(config.headers);
    const spans = typeof config.url === 'string' ? queryCredentials(config.url) : [];
    if (!headers && spans.length === 0) return destination;
    const replaced = Object.entries(headers ?? {}).map(([name, value]) => [
      name,
      typeof value === 'string' ? replace(`headers.${name}`, value) : value,
    ]);
    return {
      ...destination,
      destination_config: {
        ...config,
        ...(spans.length > 0 ? { url: replacedSpans(config.url as string, spans, replace) } : {}),
        ...(headers ? { headers: Object.fromEntries(replaced) } : {}),
      },
    };
  }
  if (destination.destination_type === 'queue' && config && typeof config.url === 'string') {
    const spans = urlCredentials(config.url, config.broker);
    if (spans.length === 0) return destination;
    return { ...destination, destination_config: { ...config, url: replacedSpans(config.url, spans, replace) } };
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
  // A credential goes only where it went: sent to another address, its mask would carry it there.
  const moved = current !== undefined && addressOf(given) !== addressOf(current);
  const known = new Map<string, string>();
  for (const [slot, value] of current && !moved ? credentialsOf(current) : []) {
    // A reference left in `current` is a credential that did not open: a mask cannot keep it.
    if (!isSecretReference(value)) known.set(slotKey(slot), value);
  }
  const missing: Slot[] = [];
  const result = withCredentials(given, (slot, value) => {
    if (!isMask(value)) return value;
    const kept = known.get(slotKey(slot));
    if (kept === undefined) missing.push(slot);
    return kept ?? value;
  });
  if (missing.length > 0) {
    const why = moved ? 'the destination’s address changed, so' : 'the rule has no credential there:';
    const violations = missing.map((slot) => ({
      path: `destination_config.${slot}`,
      message: `is the mask ${SECRET_MASK}, but ${why} give the value itself`,
    }));
    throw new ValidationError('routing.invalid-destination', violations.map((v) => `${v.path} ${v.message}`).join('; '), violations);
  }
  return result;
}

/** Header names are one whatever their case (`authorization` is `Authorization`). */
export const slotKey = (slot: Slot) => (slot.startsWith('headers.') ? slot.toLowerCase() : slot);

/** Where a destination sends, without its credentials: its type, broker and URL. */
function addressOf(destination: DestinationLike): string {
  const config = recordOf(withCredentials(destination, () => '').destination_config) ?? {};
  return JSON.stringify([destination.destination_type, config.broker ?? null, config.url ?? null]);
}
