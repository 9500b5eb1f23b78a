import type { TrackingEvent } from '../domain/tracking-event.js';

/** Tracking's own view of its events, kept in step with the log by an inline projection. */
export interface TrackingEventsView {
  byId(id: string): Promise<TrackingEvent | undefined>;
  /** Resolves when the view's storage answers; rejects with the reason it does not. */
  probe(): Promise<void>;
}
