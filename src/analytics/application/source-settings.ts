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

/** An origin as browsers send it: scheme, host and port, nothing else. */
export function parseOrigins(value: unknown): string[] | null {
  if (value === null) return null;
  if (!Array.isArray(value) || value.length > MAX_ORIGINS) throw invalid(`must be null or an array of at most ${MAX_ORIGINS} origins`);
  return value.map((origin, i) => {
    if (typeof origin !== 'string') throw invalid(`[${i}] must be a string`);
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      throw invalid(`[${i}] must be an origin such as https://shop.example`);
    }
    if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.origin !== origin)
      throw invalid(`[${i}] must be an origin such as https://shop.example, without path or trailing slash`);
    return origin;
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
