import type { StoreTransaction } from '../event-store/event-store.js';
import type { RecordedEvent } from '../events.js';

/**
 * A named consumer of the log. It never knows whether an in-process poller or a broker feeds it.
 * `handle` runs in one transaction with the subscriber's checkpoint, and must be idempotent:
 * the same event may be delivered again after a crash or by an at-least-once broker.
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
  handle(events: readonly RecordedEvent[], tx: StoreTransaction): Promise<void>;
  /** Throws away the subscriber's own tables so a replay rebuilds them from the log. */
  reset?(tx: StoreTransaction): Promise<void>;
}
