import type { Clock } from '../../shared/clock.js';
import { ValidationError } from '../../shared/errors.js';
import type { EventStore } from '../../shared/event-store/event-store.js';
import { appendOnce, fingerprintOf, keyedStreamId, type KeyedAppend } from '../../shared/event-store/keyed-append.js';
import type { EventMetadata, NewEvent } from '../../shared/events.js';
import type { IdGenerator } from '../../shared/ids.js';
import {
  decideRecord,
  initialState,
  PUBLISHED_AS,
  SCHEMA_VERSION,
  trackingEventFromCommand,
  trackingEventFromRecorded,
  trackingStreamId,
  type RecordTrackingEventCommand,
  type TrackingEvent,
  type TrackingEventRecorded,
} from '../domain/tracking-event.js';

export interface RecordTrackingEventDeps {
  readonly store: EventStore;
  readonly clock: Clock;
  readonly newId: IdGenerator;
}

/** Facts about the request that carried the event: kept in its metadata, never used to decide. */
export interface RequestContext {
  readonly correlationId?: string;
}

/** An event as recorded, and whether a retry under the same `Idempotency-Key` found it recorded already. */
export interface Recorded {
  readonly event: TrackingEvent;
  readonly replayed: boolean;
}

/**
 * Resolves once the event is durable (group committed with concurrent requests): the caller may
 * acknowledge it. Under an `Idempotency-Key` (scoped to the event's partner) the event is recorded
 * once, for good: a retry gets the first event, the key sent with another event a 422.
 */
export const recordTrackingEvent =
  ({ store, clock, newId }: RecordTrackingEventDeps) =>
  async (command: RecordTrackingEventCommand, context: RequestContext = {}, idempotencyKey?: string): Promise<Recorded> => {
    const event = trackingEventFromCommand(command, newId(), clock.now());
    if (idempotencyKey === undefined) {
      await store.append(appendOf(event, context));
      return { event, replayed: false };
    }
    const outcome = await appendOnce(store, keyedAppendOf(event, command, context, idempotencyKey), () => keyReused(idempotencyKey));
    return { event: recordedEventOf(outcome.events), replayed: outcome.replayed };
  };

/** The append that records one event on its own stream, which must not exist yet. */
export function appendOf(event: TrackingEvent, context: RequestContext) {
  return {
    streamId: trackingStreamId(event.id),
    events: decideRecord(event, initialState).map((recorded): NewEvent => ({ ...recorded, metadata: metadataOf(context) })),
    expectedVersion: 'no_stream' as const,
    source: event.partnerId,
  };
}

/**
 * The same append on the stream its key names (`keyed-append.ts`). A batch's keys (its header and each
 * event's place) are of their own kind: a single request sent with `K#0` is not the batch's event 0.
 */
export function keyedAppendOf(
  event: TrackingEvent,
  command: RecordTrackingEventCommand,
  context: RequestContext,
  key: string,
  place?: number,
): KeyedAppend {
  const streamId =
    place === undefined
      ? keyedStreamId('tracking', event.partnerId, key)
      : keyedStreamId('tracking-batch', event.partnerId, `${key}\n${place}`);
  return { request: { ...appendOf(event, context), streamId }, fingerprint: fingerprintOf(command) };
}

export function recordedEventOf(events: readonly { readonly data: object }[]): TrackingEvent {
  const [first] = events;
  if (!first) throw new Error('a recorded tracking stream holds no event');
  return trackingEventFromRecorded(first.data as TrackingEventRecorded['data']);
}

export function keyReused(key: string, place?: number): ValidationError {
  const what = place === undefined ? 'another tracking event' : `another tracking event at place ${place} of the batch (event ${place})`;
  return new ValidationError(
    'tracking.idempotency-key-reused',
    `Idempotency-Key "${key}" was sent with ${what} before; a new event needs a new key`,
    [{ path: 'Idempotency-Key', message: 'was sent with another request' }],
  );
}

// The public name travels with the event, so a relay can publish it under that name without knowing tracking.
const metadataOf = ({ correlationId }: RequestContext): EventMetadata => ({
  schema_version: SCHEMA_VERSION,
  published_as: PUBLISHED_AS,
  ...(correlationId ? { correlationId } : {}),
});
