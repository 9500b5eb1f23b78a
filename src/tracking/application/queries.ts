import { messageOf, NotFoundError } from '../../shared/errors.js';
import type { TrackingEvent } from '../domain/tracking-event.js';
import type { TrackingEventsView } from './ports.js';

export const getTrackingEvent =
  (view: TrackingEventsView) =>
  async (id: string): Promise<TrackingEvent> => {
    const event = await view.byId(id);
    if (!event) throw new NotFoundError('tracking.event-not-found', `no tracking event with id ${id}`);
    return event;
  };

export interface TrackingHealth {
  readonly status: 'ok' | 'down';
  readonly database: 'ok' | 'down';
  readonly detail?: string;
}

/** Whether tracking can serve reads; writes go through the event store, which readiness reports on. */
export const checkTrackingHealth = (view: TrackingEventsView) => async (): Promise<TrackingHealth> => {
  try {
    await view.probe();
    return { status: 'ok', database: 'ok' };
  } catch (error) {
    return { status: 'down', database: 'down', detail: messageOf(error) };
  }
};
