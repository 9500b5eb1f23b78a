import type { StoreTransaction } from '../event-store/event-store.js';
import type { RecordedEvent } from '../events.js';

/**
 * A named consumer of the log. It never knows whether an in-process poller or a broker feeds it.
 * `handle` runs in one transaction with what records the events as consumed (the checkpoint of an
 * in-process poller, the consumed-event rows of a broker's consumer), so each event takes effect once
 * even though it may be delivered again after a crash or by an at-least-once broker.
 */
export interface Subscriber {
  readonly name: string;
  /** Event types it reacts to; other events only move its checkpoint. */
  readonly handles: readonly string[];
  /**
   * The context that publishes every type it handles, when one does (a replica of that context's
   * data): a broker then needs to hand it only that context's messages.
   */
  readonly from?: string;
  /**
   * Handling an event again, even after later events, leaves its tables as handling it once did (a
   * view that folds every event to a state, never counting). A broker's consumer then keeps no record
   * of the events it consumed for this subscriber: a redelivery is simply folded again.
   */
  readonly idempotent?: true;
  /**
   * Of the events of the types it handles, whether it acts on this one: a pure test of the event.
   * Those it passes over cost no transaction, and a broker's consumer acknowledges them at once
   * instead of recording them as consumed (a role sees every item, a subscriber may want a few).
   */
  readonly wants?: (event: RecordedEvent) => boolean;
  handle(events: readonly RecordedEvent[], tx: StoreTransaction): Promise<void>;
  /** Throws away the subscriber's own tables so a replay rebuilds them from the log. */
  reset?(tx: StoreTransaction): Promise<void>;
}

/** Whether the subscriber acts on the event: one of its types, and wanted. */
export const actsOn = (subscriber: Pick<Subscriber, 'handles' | 'wants'>, event: RecordedEvent): boolean =>
  subscriber.handles.includes(event.type) && (subscriber.wants?.(event) ?? true);
