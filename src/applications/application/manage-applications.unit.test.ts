import { expect, it } from 'vitest';
import { fixedClock } from '../../shared/clock.js';
import type { EventStore } from '../../shared/event-store/event-store.js';
import { ensureApplication, type ApplicationDeps } from './manage-applications.js';
import type { ApplicationDirectory } from './ports.js';

it('remembers the latest 100,000 sources it made sure of: one seen before those is looked up again (each partner ever seen stayed)', async () => {
  const lookedUp: string[] = [];
  const directory = {
    async get(appId: string) {
      lookedUp.push(appId);
      return { app_id: appId };
    },
  } as unknown as ApplicationDirectory;
  const clock = fixedClock('2026-12-07T10:00:00.000Z');
  const ensure = ensureApplication({ store: {} as EventStore, clock, newId: () => 'id', directory } as ApplicationDeps);
  for (let n = 0; n <= 100_000; n++) await ensure(`partner-${n}`);
  expect(lookedUp).toHaveLength(100_001);
  await ensure('partner-100000');
  await ensure('partner-0');
  expect(lookedUp.slice(100_001)).toEqual(['partner-0']);
});
