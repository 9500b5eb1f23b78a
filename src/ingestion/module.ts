import type { ContextModule, ContextTables, ModuleDeps } from '../app/context-module.js';
import { ingestData } from './application/ingest-data.js';
import { getAllData, getDataById, getDataByPartnerId } from './application/queries.js';
import { ingestionHttp } from './adapters/http/ingestion-routes.js';
import { ingestedItemsProjection, sqlIngestedItemsView } from './adapters/sql/ingested-items-table.js';
import { ingestionMigrations } from './adapters/sql/migrations.js';

export const ingestionTables: ContextTables = { migrations: [ingestionMigrations], inlineProjections: [ingestedItemsProjection] };

export function ingestionModule({ store, db, clock, newId }: ModuleDeps): ContextModule {
  const items = sqlIngestedItemsView(db);
  return {
    name: 'ingestion',
    http: [
      ingestionHttp({
        ingest: ingestData({ store, clock, newId }),
        getDataById: getDataById(items),
        getAllData: getAllData(items),
        getDataByPartnerId: getDataByPartnerId(items),
      }),
    ],
  };
}
