import type { ContextModule, ContextTables, ModuleDeps } from '../app/context-module.js';
import { getDashboard, getStatistics, listApplications } from './application/queries.js';
import { refreshStatistics } from './application/refresh-statistics.js';
import { statisticsSubscriber } from './application/statistics-subscriber.js';
import { statisticsHttp } from './adapters/http/statistics-routes.js';
import { statisticsMigrations } from './adapters/sql/migrations.js';
import { sqlStatisticsReads } from './adapters/sql/sql-statistics-reads.js';
import { sqlStatisticsTables } from './adapters/sql/sql-statistics-tables.js';

export const statisticsTables: ContextTables = { migrations: [statisticsMigrations] };

export function statisticsModule({ store, db, clock }: ModuleDeps): ContextModule {
  const reads = sqlStatisticsReads(db);
  return {
    name: 'statistics',
    subscribers: [statisticsSubscriber(sqlStatisticsTables)],
    http: [
      statisticsHttp({
        statistics: getStatistics(reads),
        dashboard: getDashboard(reads),
        refresh: refreshStatistics({ log: store, tables: sqlStatisticsTables, clock }),
        applications: listApplications(reads),
      }),
    ],
  };
}
