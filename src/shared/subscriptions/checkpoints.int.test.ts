import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../events.js';
import {
  countParked,
  findParked,
  listParked,
  loadCheckpoint,
  pageParked,
  parkEvent,
  replaysUnderWay,
  saveCheckpoint,
  startReplayCheckpoint,
  unpark,
  unparkAll,
} from './checkpoints.js';
import { subscriptionMigrations } from './migrations.js';
import { testDatabases, type TestDatabase } from '../sql/test-databases.js';

const event = (eventId: string, position: number): RecordedEvent => ({
  eventId,
  position,
  streamId: `data-${eventId}`,
  streamVersion: 1,
  type: 'DataIngested',
  data: { item_id: eventId },
  metadata: {},
  recordedAt: '2026-12-02T00:00:00.000Z',
});

const databases = testDatabases([subscriptionMigrations])
  .filter((kind) => !kind.skip)
  .map((kind): [string, () => Promise<TestDatabase>] => [kind.name, kind.open]);

describe.each(databases)('parked events on %s', (_name, open) => {
  it('are keyed by event id: events of two services at the same position are both kept, and kept whole', async () => {
    const { db, close } = await open();
    try {
      // Position 7 of the ingestion log and position 7 of the validation log, parked by one bus consumer.
      await parkEvent(db, 'query', event('e-ingestion-7', 7), 'boom', 5, '2026-12-02T00:00:01.000Z');
      await parkEvent(db, 'query', event('e-validation-7', 7), 'bang', 5, '2026-12-02T00:00:02.000Z');
      await parkEvent(db, 'query', event('e-validation-7', 7), 'bang again', 6, '2026-12-02T00:00:03.000Z');
      const parked = await listParked(db, 'query');
      expect(parked.map((p) => [p.eventId, p.error, p.attempts])).toEqual(
        expect.arrayContaining([
          ['e-ingestion-7', 'boom', 5],
          ['e-validation-7', 'bang again', 6],
        ]),
      );
      expect(parked).toHaveLength(2);
      expect(parked.find((p) => p.eventId === 'e-ingestion-7')?.event).toEqual(event('e-ingestion-7', 7));
      // The position names neither: the operator is asked for the event id, never handed the first one.
      await expect(findParked(db, 'query', 7)).rejects.toThrow(
        expect.objectContaining({
          code: 'subscriptions.ambiguous-parked-position',
          message: expect.stringContaining('e-ingestion-7, e-validation-7'),
        }),
      );
      expect((await findParked(db, 'query', 'e-validation-7'))?.error).toBe('bang again');
      await unpark(db, 'query', 'e-ingestion-7');
      expect((await listParked(db, 'query')).map((p) => p.eventId)).toEqual(['e-validation-7']);
      expect((await findParked(db, 'query', 7))?.eventId).toBe('e-validation-7');
    } finally {
      await close();
    }
  });

  it('are counted, found, paged and cleared without a cap, past a thousand', async () => {
    const { db, close } = await open();
    try {
      for (let i = 1; i <= 1205; i++) await parkEvent(db, 'stats', event(`s-${i}`, i), 'boom', 1, '2026-12-02T00:00:01.000Z');
      // Two services' events at one position: the page's key includes the event id.
      await parkEvent(db, 'query', event('q-a', 9), 'boom', 1, '2026-12-02T00:00:01.000Z');
      await parkEvent(db, 'query', event('q-b', 9), 'boom', 1, '2026-12-02T00:00:01.000Z');
      expect(await countParked(db)).toEqual(
        new Map([
          ['stats', 1205],
          ['query', 2],
        ]),
      );
      expect((await findParked(db, 'stats', 1203))?.eventId).toBe('s-1203');
      expect((await findParked(db, 'stats', 's-1204'))?.position).toBe(1204);
      expect(await findParked(db, 'query', 1203)).toBeUndefined();

      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await pageParked(db, 'stats', { limit: 500, ...(cursor ? { cursor } : {}) });
        seen.push(...page.items.map((p) => p.eventId));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      expect(seen).toEqual(Array.from({ length: 1205 }, (_, i) => `s-${i + 1}`));
      const first = await pageParked(db, 'query', { limit: 1 });
      const second = await pageParked(db, 'query', { limit: 1, cursor: first.nextCursor ?? '' });
      expect([...first.items, ...second.items].map((p) => p.eventId)).toEqual(['q-a', 'q-b']);
      // Pages leave the stored events out (the API shows none); finding one reads it.
      expect(first.items[0]?.event).toBeUndefined();
      expect((await findParked(db, 'query', 'q-a'))?.event?.eventId).toBe('q-a');
      expect(second.nextCursor).toBeNull();

      await unparkAll(db, 'stats');
      expect(await countParked(db)).toEqual(new Map([['query', 2]]));
    } finally {
      await close();
    }
  });
});

describe.each(databases)('replays under way on %s', (_name, open) => {
  it('are kept with the checkpoint until it has reached the head they rebuild up to', async () => {
    const { db, close } = await open();
    try {
      const at = '2026-12-02T00:00:01.000Z';
      await saveCheckpoint(db, 'query', 40, at);
      await saveCheckpoint(db, 'stats', 40, at);
      await startReplayCheckpoint(db, 'query', 50, at);
      expect(await loadCheckpoint(db, 'query')).toBe(0);
      expect(await replaysUnderWay(db)).toEqual(new Map([['query', 50]]));
      await saveCheckpoint(db, 'query', 49, at);
      await saveCheckpoint(db, 'stats', 60, at);
      expect(await replaysUnderWay(db)).toEqual(new Map([['query', 50]]));
      await saveCheckpoint(db, 'query', 50, at);
      expect(await replaysUnderWay(db)).toEqual(new Map());
      // A replay of an empty log has nothing to rebuild.
      await startReplayCheckpoint(db, 'fresh', 0, at);
      expect(await replaysUnderWay(db)).toEqual(new Map());
    } finally {
      await close();
    }
  });
});
