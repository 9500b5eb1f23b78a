import type { ContextModule, ContextTables, ModuleDeps } from '../shared/context-module.js';
import { getItem, getView, listItems, listItemsWithHistory } from './application/queries.js';
import { queryProjection } from './application/query-projection.js';
import { eventStoreItemHistory } from './adapters/event-store-item-history.js';
import { queryHttp } from './adapters/http/query-routes.js';
import { queryMigrations } from './adapters/sql/migrations.js';
import { sqlItemHistory } from './adapters/sql/sql-item-history.js';
import { sqlItemViews } from './adapters/sql/sql-item-views.js';

export const queryTables: ContextTables = { migrations: [queryMigrations] };

/**
 * `shared-log`: item histories are read from the event store the query service shares (embedded mode).
 * `own-copy`: the query service keeps the events it consumes (distributed mode).
 */
export type HistorySource = 'shared-log' | 'own-copy';

export function queryModule({ store, db }: ModuleDeps, history: HistorySource = 'shared-log'): ContextModule {
  const views = sqlItemViews(db);
  const itemHistory = history === 'own-copy' ? sqlItemHistory(db) : eventStoreItemHistory(store);
  return {
    name: 'query',
    subscribers: [queryProjection(sqlItemViews, history === 'own-copy' ? sqlItemHistory : undefined)],
    http: [
      queryHttp({
        getItem: getItem(views, itemHistory, history === 'shared-log'),
        getView: getView(views, itemHistory, history === 'shared-log'),
        listItems: listItems(views),
        listItemsWithHistory: listItemsWithHistory(views, itemHistory),
      }),
    ],
  };
}
