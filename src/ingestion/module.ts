import type { ContextModule, ContextTables, ModuleDeps } from '../shared/context-module.js';
import {
  commitPrepared,
  IDEMPOTENCY_WINDOW_MS,
  ingestBatch,
  ingestData,
  ingestEvent,
  type CommitPrepared,
  type IngestDataDeps,
  type ToCommit,
} from './application/ingest-data.js';
import { eventText, fromEventText, type EventText } from '../shared/event-store/serialized-event.js';
import { mapYielding } from '../shared/yielding.js';
import type { EnsureSource, RouteEvent } from './application/ports.js';
import { getAllData, getDataById, getDataByPartnerId } from './application/queries.js';
import { appEventHttp } from './adapters/http/app-event-routes.js';
import { ingestionHttp } from './adapters/http/ingestion-routes.js';
import { sqlIdempotencyLog } from './adapters/sql/idempotency-table.js';
import { idempotencyPruner } from './application/idempotency-pruner.js';
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

export interface IngestionModule extends ContextModule {
  /** The batch use case, for contexts that turn their own messages into events (the tracking API). */
  readonly ingestBatch: ReturnType<typeof ingestBatch>;
}

export function ingestionModule(
  { store, db, clock, newId, logger, procedures, admit }: ModuleDeps,
  options: IngestionOptions = {},
): IngestionModule {
  const items = sqlIngestedItemsView(db);
  const commitStored = commitPrepared({ store, clock, idempotency: sqlIdempotencyLog, idempotencyWindowMs: options.idempotencyWindowMs });
  // The events go over as JSON text, made on the calling thread: the storage thread stores text and
  // would otherwise rebuild each payload's objects from the message only to stringify them again.
  const commitText = procedures.define('ingestion.commit-prepared', async (entries: ReadonlyArray<ToCommit<EventText>>) => {
    // A request's entries are of one application (a batch, a Segment batch).
    await admit?.(entries[0]?.appId, entries.length);
    return commitStored(entries.map((entry) => ({ ...entry, events: entry.events.map(fromEventText) })));
  });
  // A batch's events are turned into text in slices of the thread, so a large one does not hold other requests.
  const commit: CommitPrepared = async (entries) =>
    commitText(await mapYielding(entries, (entry) => ({ ...entry, events: entry.events.map(eventText) })));
  const deps: IngestDataDeps = { store, clock, newId, ...options, idempotency: sqlIdempotencyLog, commit };
  const batch = ingestBatch(deps);
  const pruner = idempotencyPruner({
    db,
    clock,
    logger,
    idempotency: sqlIdempotencyLog,
    windowMs: options.idempotencyWindowMs ?? IDEMPOTENCY_WINDOW_MS,
  });
  return {
    name: 'ingestion',
    ingestBatch: batch,
    subscribers: [itemStatusSubscriber(sqlItemStatuses)],
    http: [
      ingestionHttp({
        ingest: ingestData(deps),
        ingestEvent: ingestEvent(deps),
        getDataById: getDataById(items),
        getAllData: getAllData(items),
        getDataByPartnerId: getDataByPartnerId(items),
      }),
      appEventHttp({ ingestEvent: ingestEvent(deps), ingestBatch: batch }),
    ],
    start: pruner.start,
    stop: pruner.stop,
    pause: pruner.stop,
    resume: pruner.start,
  };
}
