import { ValidationError, type Violation } from '../../shared/errors.js';
import type { AppendRequest } from '../../shared/event-store/event-store.js';
import type { KeyedEntry, KeyedOutcome } from '../../shared/event-store/keyed-append.js';
import { trackingEventFromCommand, type RecordTrackingEventCommand, type TrackingEvent } from '../domain/tracking-event.js';
import { appendOf, keyedAppendOf, recordedEventOf, type RecordTrackingEventDeps, type RequestContext } from './record-tracking-event.js';

/** Appends every request in one transaction: all of them are recorded, or none. */
export type AppendAll = (requests: readonly AppendRequest[]) => Promise<void>;

export type TrackingReceipt =
  | { readonly status: 'recorded'; readonly event: TrackingEvent }
  /** Recorded by an earlier request under the same `Idempotency-Key`: the first event. */
  | { readonly status: 'duplicate'; readonly event: TrackingEvent }
  | { readonly status: 'rejected'; readonly violations: readonly Violation[] };

export const MAX_BATCH_SIZE = 500;

/** Records each keyed event once, in one transaction (`appendAllOnce`). */
export type AppendAllOnce = (entries: readonly KeyedEntry[]) => Promise<KeyedOutcome[]>;

type Deps = Omit<RecordTrackingEventDeps, 'store'> & { readonly appendAll: AppendAll; readonly appendAllOnce: AppendAllOnce };

/**
 * Records every valid event of a batch and reports each invalid one, so one bad event never drops
 * the others. The valid ones commit in one transaction: an infrastructure failure records none of
 * them and the client retries the whole batch, instead of untangling a half-recorded one. Under an
 * `Idempotency-Key` each event is keyed by the header and its place in the request (`K#3`), so a
 * retried batch records nothing again: `places` holds each command's place in the request (refused
 * events counted), so that a retry keys each event as before.
 */
export const recordTrackingEvents =
  ({ clock, newId, appendAll, appendAllOnce }: Deps) =>
  async (
    commands: readonly RecordTrackingEventCommand[],
    context: RequestContext = {},
    key?: { readonly header: string; readonly places: readonly number[] },
  ): Promise<TrackingReceipt[]> => {
    if (commands.length > MAX_BATCH_SIZE) {
      throw new ValidationError('tracking.batch-too-large', `a batch holds at most ${MAX_BATCH_SIZE} events (got ${commands.length})`, [
        { path: 'events', message: `must hold at most ${MAX_BATCH_SIZE} events` },
      ]);
    }
    const receivedAt = clock.now();
    const receipts = commands.map((command): TrackingReceipt => {
      try {
        return { status: 'recorded', event: trackingEventFromCommand(command, newId(), receivedAt) };
      } catch (error) {
        if (error instanceof ValidationError) return { status: 'rejected', violations: error.violations };
        throw error;
      }
    });
    if (key === undefined) {
      const recorded = receipts.flatMap((receipt) => (receipt.status === 'recorded' ? [receipt.event] : []));
      if (recorded.length > 0) await appendAll(recorded.map((event) => appendOf(event, context)));
      return receipts;
    }
    const indexes: number[] = [];
    const entries = commands.flatMap((command, index): KeyedEntry[] => {
      const receipt = receipts[index];
      if (receipt?.status !== 'recorded') return [];
      const place = key.places[index];
      if (place === undefined) throw new Error(`no place in the request for event ${index}`);
      indexes.push(index);
      return [{ key: key.header, place, append: keyedAppendOf(receipt.event, command, context, key.header, place) }];
    });
    const outcomes = entries.length > 0 ? await appendAllOnce(entries) : [];
    const answered = [...receipts];
    outcomes.forEach((outcome, i) => {
      const index = indexes[i];
      if (index !== undefined && outcome.replayed) answered[index] = { status: 'duplicate', event: recordedEventOf(outcome.events) };
    });
    return answered;
  };
