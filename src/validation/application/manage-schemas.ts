import type { Clock } from '../../shared/clock.js';
import { NotFoundError } from '../../shared/errors.js';
import type { EventStore } from '../../shared/event-store/event-store.js';
import { retriedChanges } from '../../shared/event-store/retried-changes.js';
import {
  decideRegister,
  decideRemove,
  describe,
  evolveSchema,
  noSchema,
  schemaStreamId,
  type SchemaEvent,
  type SchemaKey,
  type SchemaState,
} from '../domain/schema-registry.js';
import type { SchemaCatalog, SchemaCheck, StoredSchema } from './ports.js';

export interface SchemaDeps {
  readonly store: EventStore;
  readonly clock: Clock;
  readonly check: SchemaCheck;
}

/**
 * Loads a schema's state by folding its stream; the stream's length is the version to expect.
 * Type `a@b` for every source and type `a` for source `b` share a stream id, so only the key's own
 * events are folded.
 */
async function load(store: EventStore, key: SchemaKey): Promise<{ state: SchemaState; streamVersion: number }> {
  const events = (await store.readStream(schemaStreamId(key))) as unknown as SchemaEvent[];
  const own = events.filter((e) => e.data.event_type === key.eventType && e.data.partner_id === key.partnerId);
  return { state: own.reduce(evolveSchema, noSchema), streamVersion: events.length };
}

/** Changes to one schema stream: decided again on the new state when another committed first. */
const changes = retriedChanges('validation.busy', (streamId) => `schema ${streamId.slice('schema-'.length)}`);

/**
 * Registers a new version; the schema must compile, so a broken one never reaches the pipeline.
 * Two at once both land, one after the other, as two versions.
 */
export const registerSchema =
  ({ store, clock, check }: SchemaDeps) =>
  async (key: SchemaKey, schema: unknown): Promise<StoredSchema> => {
    const streamId = schemaStreamId(key);
    let compiled: unknown;
    return changes(store, streamId, async () => {
      const { state, streamVersion } = await load(store, key);
      const event = decideRegister(key, schema, state, clock.now());
      // Compiled once: a decision taken again differs only in its version number.
      if (compiled !== event.data.schema) await check((compiled = event.data.schema));
      return {
        append: { streamId, events: [event], expectedVersion: streamVersion === 0 ? 'no_stream' : streamVersion },
        result: {
          eventType: key.eventType,
          partnerId: key.partnerId,
          version: event.data.version,
          schema: event.data.schema,
          registeredAt: event.data.registered_at,
        },
      };
    });
  };

/** Removes the schema; a second removal at once finds none (404), as it would a moment later. */
export const removeSchema =
  ({ store, clock }: Omit<SchemaDeps, 'check'>) =>
  async (key: SchemaKey): Promise<void> => {
    const streamId = schemaStreamId(key);
    await changes(store, streamId, async () => {
      const { state, streamVersion } = await load(store, key);
      const event = decideRemove(key, state, clock.now());
      return { append: { streamId, events: [event], expectedVersion: streamVersion }, result: undefined };
    });
  };

export const getSchema = (catalog: SchemaCatalog) => async (key: SchemaKey) => {
  const schema = await catalog.current(key);
  if (!schema) throw new NotFoundError('validation.schema-not-found', `no schema is registered for ${describe(key)}`);
  return schema;
};
