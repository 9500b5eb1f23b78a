import type { Clock } from '../../shared/clock.js';
import { NotFoundError } from '../../shared/errors.js';
import type { EventStore } from '../../shared/event-store/event-store.js';
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
import type { SchemaCatalog, SchemaCompiler, StoredSchema } from './ports.js';

export interface SchemaDeps {
  readonly store: EventStore;
  readonly clock: Clock;
  readonly compiler: SchemaCompiler;
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

/** Registers a new version; the schema must compile, so a broken one never reaches the pipeline. */
export const registerSchema =
  ({ store, clock, compiler }: SchemaDeps) =>
  async (key: SchemaKey, schema: unknown): Promise<StoredSchema> => {
    const { state, streamVersion } = await load(store, key);
    const event = decideRegister(key, schema, state, clock.now());
    compiler.compile(event.data.schema);
    await store.append({
      streamId: schemaStreamId(key),
      events: [event],
      expectedVersion: streamVersion === 0 ? 'no_stream' : streamVersion,
    });
    return {
      eventType: key.eventType,
      partnerId: key.partnerId,
      version: event.data.version,
      schema: event.data.schema,
      registeredAt: event.data.registered_at,
    };
  };

export const removeSchema =
  ({ store, clock }: Omit<SchemaDeps, 'compiler'>) =>
  async (key: SchemaKey): Promise<void> => {
    const { state, streamVersion } = await load(store, key);
    const event = decideRemove(key, state, clock.now());
    await store.append({ streamId: schemaStreamId(key), events: [event], expectedVersion: streamVersion });
  };

export const getSchema = (catalog: SchemaCatalog) => async (key: SchemaKey) => {
  const schema = await catalog.current(key);
  if (!schema) throw new NotFoundError('validation.schema-not-found', `no schema is registered for ${describe(key)}`);
  return schema;
};
