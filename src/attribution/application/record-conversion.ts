import type { Clock } from '../../shared/clock.js';
import type { EventStore } from '../../shared/event-store/event-store.js';
import type { NewEvent } from '../../shared/events.js';
import type { IdGenerator } from '../../shared/ids.js';
import {
  CONVERSION_PUBLISHED_AS,
  CONVERSION_SCHEMA_VERSION,
  conversionFromCommand,
  conversionStreamId,
  decideRecordConversion,
  noConversion,
  type Conversion,
  type RecordConversionCommand,
} from '../domain/conversion.js';

export interface RecordConversionDeps {
  readonly store: EventStore;
  readonly clock: Clock;
  readonly newId: IdGenerator;
}

/** Resolves once the conversion is durable; its credits follow as soon as the attribution subscriber handles it. */
export const recordConversion =
  ({ store, clock, newId }: RecordConversionDeps) =>
  async (command: RecordConversionCommand, context: { readonly correlationId?: string } = {}): Promise<Conversion> => {
    const conversion = conversionFromCommand(command, newId(), clock.now());
    const events = decideRecordConversion(conversion, noConversion).map((event): NewEvent => ({
      ...event,
      metadata: {
        schema_version: CONVERSION_SCHEMA_VERSION,
        published_as: CONVERSION_PUBLISHED_AS,
        ...(context.correlationId ? { correlationId: context.correlationId } : {}),
      },
    }));
    await store.append({ streamId: conversionStreamId(conversion.id), events, expectedVersion: 'no_stream' });
    return conversion;
  };
