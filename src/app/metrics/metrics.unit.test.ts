import { describe, expect, it } from 'vitest';
import { countAppendedEvents, createMetrics } from './metrics.js';

describe('createMetrics', () => {
  it('counts appended events from the successive heads the event store reports', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const listener = countAppendedEvents(metrics.eventsAppended, 10);
    listener(12);
    listener(15);
    // A late notification of an older head counts nothing.
    listener(14);
    listener(16);
    expect((await metrics.eventsAppended.get()).values[0]?.value).toBe(6);
  });

  it('reads the subscribers’ lag on each scrape, and scrapes without it when the status cannot be read', async () => {
    let status = [{ name: 'query', position: 3, head: 10, lag: 7, state: 'running' as const, parked: 1 }];
    let failing = false;
    const metrics = createMetrics({
      processMetrics: false,
      subscriberStatus: async () => {
        if (failing) throw new Error('database closed');
        return status;
      },
    });
    expect(await metrics.registry.metrics()).toMatch(/intake_subscriber_lag_events\{subscriber="query"\} 7/);
    status = [{ name: 'query', position: 10, head: 10, lag: 0, state: 'running' as const, parked: 1 }];
    const next = await metrics.registry.metrics();
    expect(next).toMatch(/intake_subscriber_lag_events\{subscriber="query"\} 0/);
    expect(next).toMatch(/intake_subscriber_parked_events\{subscriber="query"\} 1/);
    failing = true;
    expect(await metrics.registry.metrics()).not.toMatch(/intake_subscriber_lag_events\{/);
  });

  it('keeps each registry apart, so that two servers in one process do not mix their numbers', async () => {
    const a = createMetrics({ processMetrics: false });
    const b = createMetrics({ processMetrics: false });
    a.deliveries.inc({ outcome: 'succeeded' });
    expect(await b.registry.metrics()).not.toMatch(/intake_deliveries_total\{outcome="succeeded"\}/);
    expect(await a.registry.metrics()).toMatch(/intake_deliveries_total\{outcome="succeeded"\} 1/);
  });
});
