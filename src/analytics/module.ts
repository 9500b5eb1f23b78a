import type { ContextModule, ContextTables, ModuleDeps } from '../app/context-module.js';
import { acceptMessages } from './application/accept-messages.js';
import type { IngestEvents, ResolveWriteKey } from './application/ports.js';
import { trackingApiHttp } from './adapters/http/tracking-api-routes.js';

export const analyticsTables: ContextTables = { migrations: [] };

export interface AnalyticsPorts {
  /** Ingestion's batch use case: messages become events of the key's application. */
  readonly ingest: IngestEvents;
  /** The applications' write-key check. */
  readonly resolveWriteKey: ResolveWriteKey;
}

/** The Segment / RudderStack HTTP Tracking API, and the profiles its messages keep. */
export function analyticsModule({ clock }: ModuleDeps, ports: AnalyticsPorts): ContextModule {
  return {
    name: 'analytics',
    http: [trackingApiHttp({ resolveWriteKey: ports.resolveWriteKey, acceptMessages: acceptMessages({ ingest: ports.ingest, clock }) })],
  };
}
