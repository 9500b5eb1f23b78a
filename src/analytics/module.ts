import type { ContextModule, ContextTables, ModuleDeps } from '../shared/context-module.js';
import { acceptMessages } from './application/accept-messages.js';
import type { IngestEvents, ResolveWriteKey } from './application/ports.js';
import { getProfile } from './application/get-profile.js';
import { profileSubscriber } from './application/profile-subscriber.js';
import { profileHttp } from './adapters/http/profile-routes.js';
import { trackingApiHttp } from './adapters/http/tracking-api-routes.js';
import { sourceSettingsHttp } from './adapters/http/source-routes.js';
import { analyticsMigrations } from './adapters/sql/migrations.js';
import { sqlSourceSettings } from './adapters/sql/sql-source-settings.js';
import { getSourceSettings, putSourceSettings, showSourceSettings } from './application/source-settings.js';
import { sqlProfileLedger, sqlProfileViews } from './adapters/sql/sql-profiles.js';

export const analyticsTables: ContextTables = { migrations: [analyticsMigrations] };

export interface AnalyticsPorts {
  /** Ingestion's batch use case: messages become events of the key's application. */
  readonly ingest: IngestEvents;
  /** The applications' write-key check. */
  readonly resolveWriteKey: ResolveWriteKey;
  readonly applicationExists: (appId: string) => Promise<boolean>;
  /** Where browsers reach this service (PUBLIC_URL), for analytics.js's settings. */
  readonly publicUrl?: URL;
}

/** The Segment / RudderStack HTTP Tracking API, and the profiles its messages keep. */
export function analyticsModule({ clock, db, procedures }: ModuleDeps, ports: AnalyticsPorts): ContextModule {
  const sources = sqlSourceSettings(db);
  const settingsOf = getSourceSettings(sources);
  return {
    name: 'analytics',
    subscribers: [profileSubscriber(sqlProfileLedger)],
    http: [
      trackingApiHttp({
        ...(ports.publicUrl ? { publicUrl: ports.publicUrl } : {}),
        resolveWriteKey: ports.resolveWriteKey,
        acceptMessages: acceptMessages({ ingest: ports.ingest, clock }),
        allowedOrigins: async (appId) => (await settingsOf(appId)).allowedOrigins ?? undefined,
      }),
      profileHttp(getProfile(sqlProfileViews(db))),
      // A write: it runs where the write connection is.
      sourceSettingsHttp({
        get: showSourceSettings(sources, ports.applicationExists),
        put: procedures.define('analytics.put-source-settings', putSourceSettings(sources, clock, ports.applicationExists)),
      }),
    ],
  };
}
