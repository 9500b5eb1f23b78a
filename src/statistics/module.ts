import type { ContextModule, ContextTables, ModuleDeps } from '../shared/context-module.js';
import { getDashboard, getStatistics, listApplications } from './application/queries.js';
import { recountStatistics } from './application/recount-statistics.js';
import { refreshStatistics } from './application/refresh-statistics.js';
import { statisticsSubscriber } from './application/statistics-subscriber.js';
import { statisticsHttp } from './adapters/http/statistics-routes.js';
import { statisticsMigrations } from './adapters/sql/migrations.js';
import { sqlStatisticsReads } from './adapters/sql/sql-statistics-reads.js';
import { sqlStatisticsTables } from './adapters/sql/sql-statistics-tables.js';

export const statisticsTables: ContextTables = { migrations: [statisticsMigrations] };

/**
 * `refreshFromLog`: counters can be recomputed from the event store this process shares (embedded).
 * In distributed mode the data events live in other services' stores, so a refresh recounts the
 * buckets from the service's own per-item tallies instead.
 */
export function statisticsModule({ store, db, clock, procedures }: ModuleDeps, refreshFromLog = true): ContextModule {
  const reads = sqlStatisticsReads(db);
  const refresh = refreshFromLog
    ? procedures.define('statistics.refresh', refreshStatistics({ log: store, tables: sqlStatisticsTables, clock }))
    : recountStatistics({ store, tables: sqlStatisticsTables, clock });
  return {
    name: 'statistics',
    subscribers: [statisticsSubscriber(sqlStatisticsTables)],
    http: [
      statisticsHttp({
        statistics: getStatistics(reads),
        dashboard: getDashboard(reads, clock),
        refresh,
        applications: listApplications(reads),
      }),
    ],
  };
}
