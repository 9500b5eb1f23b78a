import type { Clock } from '../../shared/clock.js';
import type { EventStore } from '../../shared/event-store/event-store.js';
import type { IdGenerator } from '../../shared/ids.js';
import {
  dataStreamId,
  decideIngest,
  initialState,
  itemFromCommand,
  type IngestDataCommand,
  type IngestedItem,
} from '../domain/ingested-data.js';

export interface IngestDataDeps {
  readonly store: EventStore;
  readonly clock: Clock;
  readonly newId: IdGenerator;
}

/** Resolves once the item is durable: the caller may acknowledge it. */
export const ingestData =
  ({ store, clock, newId }: IngestDataDeps) =>
  async (command: IngestDataCommand): Promise<IngestedItem> => {
    const item = itemFromCommand(command, newId(), clock.now());
    const events = decideIngest(item, initialState).map((event) => ({
      ...event,
      metadata: { schema_version: 1, ...(item.metadata.correlation_id ? { correlationId: item.metadata.correlation_id } : {}) },
    }));
    await store.append({ streamId: dataStreamId(item.id), events, expectedVersion: 'no_stream' });
    return item;
  };
