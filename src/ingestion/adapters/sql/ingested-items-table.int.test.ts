import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../../shared/events.js';
import { MAX_PAGE_BYTES } from '../../../shared/pagination.js';
import { migratePostgresToLatest } from '../../../shared/postgres/migrate.js';
import { openTemporarySchema, testPostgresUrl } from '../../../shared/postgres/temporary-schema.js';
import { migrateToLatest } from '../../../shared/sqlite/migrate.js';
import { openSqlite } from '../../../shared/sqlite/open-sqlite.js';
import { ingestedItemsProjection, sqlIngestedItemsView } from './ingested-items-table.js';
import { ingestionMigrations } from './migrations.js';

type Open = () => Promise<{ db: Kysely<object>; close(): Promise<void> }>;
const databases: Array<[string, Open]> = [
  [
    'sqlite',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'intake-ingest-items-'));
      const sqlite = openSqlite(join(dir, 'db.sqlite'));
      await migrateToLatest(sqlite.db, [ingestionMigrations]);
      return {
        db: sqlite.db,
        async close() {
          await sqlite.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  ],
  ...(testPostgresUrl
    ? [
        [
          'postgres',
          async () => {
            const postgres = await openTemporarySchema(testPostgresUrl ?? '');
            await migratePostgresToLatest(postgres, [ingestionMigrations]);
            return { db: postgres.db, close: () => postgres.close() };
          },
        ] as [string, Open],
      ]
    : []),
];

const ingested = (id: string, payload: object) =>
  ({
    type: 'DataIngested',
    data: { item_id: id, partner_id: 'p', event_type: 'data', payload, metadata: {}, received_at: '2026-12-04T10:00:00.000Z' },
  }) as unknown as RecordedEvent;

describe.each(databases)('the ingestion view on %s', (_name, open) => {
  it(`pages items of a megabyte ${MAX_PAGE_BYTES / (1024 * 1024)} MB at a time, whatever the limit`, async () => {
    const { db, close } = await open();
    try {
      const big = 'x'.repeat(1_000_000);
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
});
