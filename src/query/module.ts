import type { ContextModule, ContextTables, ModuleDeps } from '../app/context-module.js';
import { getItem, getView, listItems } from './application/queries.js';
import { queryProjection } from './application/query-projection.js';
import { eventStoreItemHistory } from './adapters/event-store-item-history.js';
import { queryHttp } from './adapters/http/query-routes.js';
import { queryMigrations } from './adapters/sql/migrations.js';
import { sqlItemViews } from './adapters/sql/sql-item-views.js';

export const queryTables: ContextTables = { migrations: [queryMigrations] };

export function queryModule({ store, db }: ModuleDeps): ContextModule {
  const views = sqlItemViews(db);
  return {
    name: 'query',
    subscribers: [queryProjection(sqlItemViews)],
    http: [queryHttp({ getItem: getItem(views, eventStoreItemHistory(store)), getView: getView(views), listItems: listItems(views) })],
  };
}
