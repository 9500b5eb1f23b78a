import { ValidationError, type Violation } from '../../shared/errors.js';
import { trackingEventFromCommand, type RecordTrackingEventCommand, type TrackingEvent } from '../domain/tracking-event.js';
import type { AppendRequest } from '../../shared/event-store/event-store.js';
import { appendOf, type RecordTrackingEventDeps, type RequestContext } from './record-tracking-event.js';

/** Appends every request in one transaction: all of them are recorded, or none. */
export type AppendAll = (requests: readonly AppendRequest[]) => Promise<void>;

export type TrackingReceipt =
  | { readonly status: 'recorded'; readonly event: TrackingEvent }
  | { readonly status: 'rejected'; readonly violations: readonly Violation[] };

export const MAX_BATCH_SIZE = 500;

/**
 * Records every valid event of a batch and reports each invalid one, so one bad event never drops
 * the others. The valid ones commit in one transaction: an infrastructure failure records none of
 * them and the client retries the whole batch, instead of untangling a half-recorded one.
 */
export const recordTrackingEvents =
  ({ clock, newId, appendAll }: Omit<RecordTrackingEventDeps, 'store'> & { readonly appendAll: AppendAll }) =>
  async (commands: readonly RecordTrackingEventCommand[], context: RequestContext = {}): Promise<TrackingReceipt[]> => {
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
    const recorded = receipts.flatMap((receipt) => (receipt.status === 'recorded' ? [receipt.event] : []));
    if (recorded.length > 0) await appendAll(recorded.map((event) => appendOf(event, context)));
    return receipts;
  };
