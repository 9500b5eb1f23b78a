import type { ContextModule, ContextTables, ModuleDeps } from '../app/context-module.js';
import { ConflictError } from '../shared/errors.js';
import { getDashboard, getStatistics, listApplications } from './application/queries.js';
import { refreshStatistics } from './application/refresh-statistics.js';
import { statisticsSubscriber } from './application/statistics-subscriber.js';
import { statisticsHttp } from './adapters/http/statistics-routes.js';
import { statisticsMigrations } from './adapters/sql/migrations.js';
import { sqlStatisticsReads } from './adapters/sql/sql-statistics-reads.js';
import { sqlStatisticsTables } from './adapters/sql/sql-statistics-tables.js';

export const statisticsTables: ContextTables = { migrations: [statisticsMigrations] };

/**
 * `refreshFromLog`: counters can be recomputed from the event store this process shares (embedded).
 * In distributed mode the data events live in other services' stores, so a refresh is refused rather
 * than recomputed from an empty log.
 */
export function statisticsModule({ store, db, clock }: ModuleDeps, refreshFromLog = true): ContextModule {
  const reads = sqlStatisticsReads(db);
  const refresh = refreshStatistics({ log: store, tables: sqlStatisticsTables, clock });
  return {
    name: 'statistics',
    subscribers: [statisticsSubscriber(sqlStatisticsTables)],
    http: [
      statisticsHttp({
        statistics: getStatistics(reads),
        dashboard: getDashboard(reads, clock),
        refresh: refreshFromLog
          ? refresh
          : async () => {
              throw new ConflictError(
                'statistics.refresh-unavailable',
                'in distributed mode the statistics service does not hold the data events, so its counters cannot be recomputed here',
              );
            },
        applications: listApplications(reads),
      }),
    ],
  };
}
