import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../../shared/events.js';
import { MAX_ITEM_PAGE_BYTES } from '../../../shared/pagination.js';
import { ingestedItemsProjection, sqlIngestedItemsView } from './ingested-items-table.js';
import { ingestionMigrations } from './migrations.js';
import { testDatabases, type TestDatabase } from '../../../shared/sql/test-databases.js';

const databases = testDatabases([ingestionMigrations])
  .filter((kind) => !kind.skip)
  .map((kind): [string, () => Promise<TestDatabase>] => [kind.name, kind.open]);

const ingested = (id: string, payload: object) =>
  ({
    type: 'DataIngested',
    data: { item_id: id, partner_id: 'p', event_type: 'data', payload, metadata: {}, received_at: '2026-12-04T10:00:00.000Z' },
  }) as unknown as RecordedEvent;

describe.each(databases)('the ingestion view on %s', (_name, open) => {
  it(`pages items of a quarter megabyte ${MAX_ITEM_PAGE_BYTES / (1024 * 1024)} MB at a time, whatever the limit`, async () => {
    const { db, close } = await open();
    try {
      const big = 'x'.repeat(250_000);
      await ingestedItemsProjection.apply(
        db,
        Array.from({ length: 10 }, (_, i) => ingested(`i${i}`, { i, big })),
      );
      const view = sqlIngestedItemsView(db);
      const sizes: number[] = [];
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await view.list({}, { limit: 1000, ...(cursor ? { cursor } : {}) });
        sizes.push(page.items.length);
        seen.push(...page.items.map((item) => item.id));
        cursor = page.nextCursor ?? undefined;
      } while (cursor !== undefined);
      expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => `i${i}`));
      expect(sizes).toEqual([4, 4, 2]);
    } finally {
      await close();
    }
  });

  it('lists items in the order they were written: one that commits after a later id is not behind a page already read', async () => {
    const { db, close } = await open();
    try {
      const view = sqlIngestedItemsView(db);
      const ids = async (cursor?: string) =>
        (await view.list({ partnerId: 'p' }, { limit: 50, ...(cursor ? { cursor } : {}) })).items.map((i) => i.id);
      await ingestedItemsProjection.apply(db, [ingested('i2', {})]);
      // A reader goes on from the last item it has: a cursor made of its id.
      const fromLast = Buffer.from('i2', 'utf8').toString('base64url');
      expect(await ids()).toEqual(['i2']);
      // i1 was stamped first but committed later (a request that waited on its rules, another transaction).
      await ingestedItemsProjection.apply(db, [ingested('i1', {}), ingested('i3', {})]);
      expect(await ids(fromLast)).toEqual(['i1', 'i3']);
      const firstPage = await view.list({ partnerId: 'p' }, { limit: 1 });
      expect(await ids(firstPage.nextCursor ?? '')).toEqual(['i1', 'i3']);
      await expect(ids(Buffer.from('unknown', 'utf8').toString('base64url'))).rejects.toThrow(/cursor/);
    } finally {
      await close();
    }
  });
});
