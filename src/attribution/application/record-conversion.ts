import type { Clock } from '../../shared/clock.js';
import { ValidationError } from '../../shared/errors.js';
import type { EventStore } from '../../shared/event-store/event-store.js';
import { appendOnce, fingerprintOf, keyedStreamId } from '../../shared/event-store/keyed-append.js';
import type { NewEvent } from '../../shared/events.js';
import type { IdGenerator } from '../../shared/ids.js';
import {
  CONVERSION_PUBLISHED_AS,
  CONVERSION_SCHEMA_VERSION,
  conversionFromCommand,
  conversionFromRecorded,
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

/** A conversion as recorded, and whether a retry under the same `Idempotency-Key` found it recorded already. */
export interface RecordedConversion {
  readonly conversion: Conversion;
  readonly replayed: boolean;
}

/**
 * Resolves once the conversion is durable; its credits follow as soon as the attribution subscriber
 * handles it. Under an `Idempotency-Key` the conversion is recorded once, for good: a retry gets the
 * first conversion (its value is never credited twice), the key sent with another conversion a 422.
 */
export const recordConversion =
  ({ store, clock, newId }: RecordConversionDeps) =>
  async (
    command: RecordConversionCommand,
    context: { readonly correlationId?: string } = {},
    idempotencyKey?: string,
  ): Promise<RecordedConversion> => {
    const conversion = conversionFromCommand(command, newId(), clock.now());
    const events = decideRecordConversion(conversion, noConversion).map((event): NewEvent => ({
      ...event,
      metadata: {
        schema_version: CONVERSION_SCHEMA_VERSION,
        published_as: CONVERSION_PUBLISHED_AS,
        ...(context.correlationId ? { correlationId: context.correlationId } : {}),
      },
    }));
    if (idempotencyKey === undefined) {
      await store.append({ streamId: conversionStreamId(conversion.id), events, expectedVersion: 'no_stream' });
      return { conversion, replayed: false };
    }
    const keyed = { request: { streamId: keyedStreamId('conversion', '', idempotencyKey), events }, fingerprint: fingerprintOf(command) };
    const outcome = await appendOnce(store, keyed, () => keyReused(idempotencyKey));
    const first = outcome.events[0];
    if (!first) throw new Error('a recorded conversion stream holds no event');
    return { conversion: conversionFromRecorded(first.data), replayed: outcome.replayed };
  };

function keyReused(key: string): ValidationError {
  return new ValidationError(
    'attribution.idempotency-key-reused',
    `Idempotency-Key "${key}" was sent with another conversion before; a new conversion needs a new key`,
    [{ path: 'Idempotency-Key', message: 'was sent with another request' }],
  );
}
