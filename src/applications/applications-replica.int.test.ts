import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../shared/events.js';
import type { StoreTransaction } from '../shared/event-store/event-store.js';
import { testDatabases } from '../shared/sql/test-databases.js';
import { applicationMigrations } from './adapters/sql/migrations.js';
import { applicationsReplica } from './module.js';

const [sqlite] = testDatabases([applicationMigrations]);

const created = (appId: string): RecordedEvent => ({
  eventId: `e-${appId}`,
  position: 1,
  streamId: `application-${appId}`,
  streamVersion: 1,
  type: 'ApplicationCreated',
  data: { app_id: appId, name: appId, created_at: '2026-12-06T10:00:00.000Z' },
  metadata: {},
  recordedAt: '2026-12-06T10:00:00.000Z',
});

describe("a service's copy of the applications", () => {
  it('waits a moment for an application it has not heard of yet, and says there is none once the wait is over', async () => {
    const { db, close } = await sqlite.open();
    try {
      const replica = applicationsReplica({ db }, 2000);
      // The application's event arrives through the broker after the rule that names it.
      const asked = replica.exists('late');
      setTimeout(() => void replica.subscriber.handle([created('late')], { db } as unknown as StoreTransaction), 200);
      expect(await asked).toBe(true);
      expect(await applicationsReplica({ db }, 100).exists('never')).toBe(false);
    } finally {
      await close();
    }
  });
});
