import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { systemClock, type Clock } from '../shared/clock.js';
import type { EventStore } from '../shared/event-store/event-store.js';
import { sqliteEventStore } from '../shared/event-store/sqlite/sqlite-event-store.js';
import { uuidV7, type IdGenerator } from '../shared/ids.js';
import { migrateToLatest } from '../shared/sqlite/migrate.js';
import { openSqlite, sqlitePathFromUrl } from '../shared/sqlite/open-sqlite.js';
import { ingestData } from '../ingestion/application/ingest-data.js';
import { getAllData, getDataById, getDataByPartnerId } from '../ingestion/application/queries.js';
import { ingestionHttp } from '../ingestion/adapters/http/ingestion-routes.js';
import { ingestedItemsProjection, sqlIngestedItemsView } from '../ingestion/adapters/sql/ingested-items-table.js';
import { resolveAdminDigest } from './admin-token.js';
import type { Config } from './config.js';
import { buildHttpServer } from './http/server.js';
import { embeddedMigrations } from './migrations.js';
import { version } from './version.js';

export interface Intake {
  readonly app: FastifyInstance;
  readonly store: EventStore;
  close(): Promise<void>;
}

export interface EmbeddedOptions {
  readonly config: Config;
  readonly logger: FastifyBaseLogger;
  readonly clock?: Clock;
  readonly newId?: IdGenerator;
  /** Receives a newly generated admin token, once. */
  readonly announceAdminToken?: (token: string) => void;
}

/** The composition root of the default mode: every context in one process on one SQLite file. */
export async function buildEmbedded(options: EmbeddedOptions): Promise<Intake> {
  const { config, logger } = options;
  const clock = options.clock ?? systemClock;
  const newId = options.newId ?? uuidV7;

  const sqlite = openSqlite(sqlitePathFromUrl(config.databaseUrl));
  await migrateToLatest(sqlite.db, embeddedMigrations);
  const store = await sqliteEventStore({
    sqlite,
    clock,
    newId,
    durability: config.durability,
    maxQueued: config.maxQueuedAppends,
    inlineProjections: [ingestedItemsProjection],
  });

  const items = sqlIngestedItemsView(sqlite.db);
  const adminDigest = resolveAdminDigest(config.adminToken, config.dataDir, options.announceAdminToken ?? (() => undefined));

  const app = await buildHttpServer({
    logger,
    version,
    bodyLimitBytes: config.bodyLimitBytes,
    adminDigest,
    readiness: async () => {
      try {
        sqlite.raw.prepare('SELECT 1').get();
        return { database: { status: 'ok' } };
      } catch (error) {
        return { database: { status: 'down', detail: (error as Error).message } };
      }
    },
    contexts: [
      ingestionHttp({
        ingest: ingestData({ store, clock, newId }),
        getDataById: getDataById(items),
        getAllData: getAllData(items),
        getDataByPartnerId: getDataByPartnerId(items),
      }),
    ],
  });

  return {
    app,
    store,
    async close() {
      await app.close();
      await store.close();
      await sqlite.close();
    },
  };
}
