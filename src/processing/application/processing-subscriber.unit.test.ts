import { describe, expect, it } from 'vitest';
import type { StoreTransaction } from '../../shared/event-store/event-store.js';
import type { RecordedEvent } from '../../shared/events.js';
import { ok, type StepConfig } from '../domain/processor.js';
import { BUILT_PIPELINES, processingSubscriber } from './processing-subscriber.js';
import type { PipelineVersion } from './ports.js';

/** A subscriber over one pipeline per event type (`t<i>`), each its own configuration, counting builds. */
function subscriberCountingBuilds() {
  const builds: string[] = [];
  const steps = (type: string): StepConfig[] => [{ processor: 'counting', fields: [type] }];
  const subscriber = processingSubscriber({
    clock: { now: () => new Date('2026-12-06T00:00:00.000Z') },
    elapsedMs: () => 0,
    pipelines: () => ({
      get: async () => {
        throw new Error('not read');
      },
      list: async () => ({ items: [], nextCursor: null }),
      versions: async (types) =>
        new Map(
          types.map((type): [string, PipelineVersion[]] => [type, [{ configuredAt: '2026-01-01T00:00:00.000Z', steps: steps(type) }]]),
        ),
    }),
    outcomes: () => ({ recordNew: async (outcomes) => new Set(outcomes.map((o) => o.itemId)) }),
    processors: {
      counting: (step) => {
        builds.push(step.fields?.[0] ?? '');
        return { name: 'counting', run: (input) => ok(input) };
      },
    },
  });
  const tx = { db: {}, appendMany: async () => [] } as unknown as StoreTransaction;
  let position = 0;
  const process = (type: string) => {
    position += 1;
    const event = {
      eventId: `e${position}`,
      position,
      streamId: `data-${position}`,
      streamVersion: 3,
      type: 'DataValidated',
      data: { item_id: `i${position}`, partner_id: 'p', event_type: type, payload: {}, received_at: '2026-12-05T00:00:00.000Z' },
      metadata: {},
      recordedAt: '2026-12-05T00:00:00.000Z',
    } as RecordedEvent;
    return subscriber.handle([event], tx);
  };
  return { builds, process };
}

describe('the processing subscriber', () => {
  it('builds each pipeline once, and keeps the BUILT_PIPELINES built last rather than every one it ever ran', async () => {
    const { builds, process } = subscriberCountingBuilds();
    await process('t0');
    await process('t0');
    expect(builds).toEqual(['t0']);
    for (let i = 1; i <= BUILT_PIPELINES; i++) await process(`t${i}`);
    await process(`t${BUILT_PIPELINES}`);
    expect(builds).toHaveLength(BUILT_PIPELINES + 1);
    // The oldest built went past the bound: it is built again.
    await process('t0');
    expect(builds.at(-1)).toBe('t0');
    expect(builds).toHaveLength(BUILT_PIPELINES + 2);
  });
});
