import type { ContextModule, ContextTables, ModuleDeps } from '../app/context-module.js';
import { ingestBatch, ingestData, ingestEvent, type IngestDataDeps } from './application/ingest-data.js';
import type { EnsureSource, RouteEvent } from './application/ports.js';
import { getAllData, getDataById, getDataByPartnerId } from './application/queries.js';
import { appEventHttp } from './adapters/http/app-event-routes.js';
import { ingestionHttp } from './adapters/http/ingestion-routes.js';
import { sqlIdempotencyLog } from './adapters/sql/idempotency-table.js';
import { ingestedItemsProjection, sqlIngestedItemsView, sqlItemStatuses } from './adapters/sql/ingested-items-table.js';
import { itemStatusSubscriber } from './application/item-status-subscriber.js';
import { ingestionMigrations } from './adapters/sql/migrations.js';

export const ingestionTables: ContextTables = { migrations: [ingestionMigrations], inlineProjections: [ingestedItemsProjection] };

export interface IngestionOptions {
  /** Routing rules evaluated on the ingest path (for the response's routing_summary). */
  readonly route?: RouteEvent;
  readonly ensureSource?: EnsureSource;
  readonly idempotencyWindowMs?: number;
}

export function ingestionModule({ store, db, clock, newId }: ModuleDeps, options: IngestionOptions = {}): ContextModule {
  const items = sqlIngestedItemsView(db);
  const deps: IngestDataDeps = { store, clock, newId, ...options, idempotency: sqlIdempotencyLog };
  return {
    name: 'ingestion',
    subscribers: [itemStatusSubscriber(sqlItemStatuses)],
    http: [
      ingestionHttp({
        ingest: ingestData(deps),
        getDataById: getDataById(items),
        getAllData: getAllData(items),
        getDataByPartnerId: getDataByPartnerId(items),
      }),
      appEventHttp({ ingestEvent: ingestEvent(deps), ingestBatch: ingestBatch(deps) }),
    ],
  };
}
