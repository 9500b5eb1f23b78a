import type { Clock } from '../../shared/clock.js';
import { NotFoundError, ValidationError } from '../../shared/errors.js';

/** The tracking API's settings of one application. */
export interface SourceSettings {
  readonly appId: string;
  /** Browser origins allowed to send with the application's write keys; null means any (the default). */
  readonly allowedOrigins: readonly string[] | null;
}

export interface SourceSettingsStore {
  get(appId: string): Promise<SourceSettings | undefined>;
  put(settings: SourceSettings, at: string): Promise<void>;
}

const MAX_ORIGINS = 100;

/** `https://*.shop.example[:port]`: any subdomain of the host, on that scheme and port (not the host itself). */
const SUBDOMAINS = /^(https?):\/\/\*\.(.+)$/;

/** An origin as browsers send it (lower-case host, punycode, no default port), or undefined. */
function originOf(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
  // WHATWG URLs take `*` in a host, which no browser sends: a pattern is only the leading `*.` form.
  if (url.username || url.password || url.pathname !== '/' || url.search || url.hash || url.host.includes('*')) return undefined;
  return url.origin;
}

/**
 * Origins as browsers send them (`https://Shop.example:443/` is kept as `https://shop.example`), or
 * `https://*.shop.example` for its subdomains.
 */
export function parseOrigins(value: unknown): string[] | null {
  if (value === null) return null;
  if (!Array.isArray(value) || value.length > MAX_ORIGINS) throw invalid(`must be null or an array of at most ${MAX_ORIGINS} origins`);
  return value.map((origin, i) => {
    if (typeof origin !== 'string') throw invalid(`[${i}] must be a string`);
    const pattern = SUBDOMAINS.exec(origin);
    const normal = pattern ? subdomainsOf(`${pattern[1]}://${pattern[2]}`) : originOf(origin);
    if (normal === undefined)
      throw invalid(
        `[${i}] must be an origin such as https://shop.example (scheme, host and port, no path), or https://*.shop.example for its subdomains`,
      );
    return normal;
  });
}

/**
 * `scheme://*.host` for a host of at least two labels that names no address: `*.com` would allow
 * every site of a top-level domain, and an address has no subdomains.
 */
function subdomainsOf(base: string): string | undefined {
  const origin = originOf(base);
  if (origin === undefined) return undefined;
  const host = new URL(origin).hostname;
  const address = host.startsWith('[') || /^[\d.]+$/.test(host);
  if (address || !host.includes('.') || host.endsWith('.')) return undefined;
  return origin.replace('://', '://*.');
}

/** Whether a browser's Origin header is one the list allows: named, or a subdomain of a `*.` entry. */
export function originAllowed(allowed: readonly string[], origin: string): boolean {
  // A pattern is not an origin: one sent as an Origin header matches nothing.
  if (origin.includes('*')) return false;
  if (allowed.includes(origin)) return true;
  const sent = originOf(origin);
  if (sent === undefined) return false;
  const { protocol, hostname, port } = new URL(sent);
  return allowed.some((entry) => {
    const pattern = SUBDOMAINS.exec(entry);
    if (!pattern) return false;
    const base = new URL(`${pattern[1]}://${pattern[2]}`);
    return base.protocol === protocol && base.port === port && hostname.endsWith(`.${base.hostname}`);
  });
}

const invalid = (message: string) =>
  new ValidationError('analytics.invalid-origins', `allowed_origins${message.startsWith('[') ? '' : ' '}${message}`, [
    { path: 'allowed_origins', message },
  ]);

export const getSourceSettings =
  (store: SourceSettingsStore) =>
  async (appId: string): Promise<SourceSettings> =>
    (await store.get(appId)) ?? { appId, allowedOrigins: null };

/** The settings the admin API shows: of an application that exists, as PUT answers (404 otherwise). */
export const showSourceSettings =
  (store: SourceSettingsStore, applicationExists: (appId: string) => Promise<boolean>) =>
  async (appId: string): Promise<SourceSettings> => {
    if (!(await applicationExists(appId))) throw new NotFoundError('analytics.unknown-application', `no application ${appId}`);
    return getSourceSettings(store)(appId);
  };

/** Settings are kept for applications that exist: a typo in the path must not leave settings nobody reads. */
export const putSourceSettings =
  (store: SourceSettingsStore, clock: Clock, applicationExists: (appId: string) => Promise<boolean>) =>
  async (appId: string, allowedOrigins: unknown): Promise<SourceSettings> => {
    const settings = { appId, allowedOrigins: parseOrigins(allowedOrigins) };
    if (!(await applicationExists(appId))) throw new NotFoundError('analytics.unknown-application', `no application ${appId}`);
    await store.put(settings, clock.now().toISOString());
    return settings;
  };
