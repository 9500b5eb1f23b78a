import { describe, expect, it } from 'vitest';
import { fixedClock } from '../../shared/clock.js';
import type { EventStore } from '../../shared/event-store/event-store.js';
import { sequentialIds } from '../../shared/ids.js';
import { ingestBatch, type CommitPrepared } from './ingest-data.js';

describe('ingesting a batch', () => {
  it('lets other requests in while it prepares a large batch, then commits it whole', async () => {
    let otherRan = false;
    const commits: Array<{ otherRanBefore: boolean; size: number }> = [];
    const commit: CommitPrepared = async (entries) => {
      commits.push({ otherRanBefore: otherRan, size: entries.length });
      return entries.map((entry) => ({ status: 'accepted', eventId: entry.itemId, routing: entry.routing }));
    };
    const ingest = ingestBatch({
      store: {} as EventStore,
      clock: fixedClock('2026-12-06T10:00:00.000Z'),
      newId: sequentialIds(),
      commit,
      sliceMs: 0,
    });
    const events = Array.from({ length: 3 }, (_, i) => ({
      command: { partnerId: 'shop', eventType: 'order_created', payload: { n: i }, channel: 'application_api' as const },
    }));
    const receipts = ingest(events);
    setImmediate(() => (otherRan = true));
    expect((await receipts).map((receipt) => receipt.status)).toEqual(['accepted', 'accepted', 'accepted']);
    expect(commits).toEqual([{ otherRanBefore: true, size: 3 }]);
  });
});
