import { mkdtempSync, rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../clock.js';
import { uuidV7 } from '../../ids.js';
import { migrateToLatest } from '../../sqlite/migrate.js';
import { openSqlite } from '../../sqlite/open-sqlite.js';
import { eventStoreContract } from '../event-store.contract.js';
import { DATA_TEXT, extendedEvent, serialize } from '../serialized-event.js';
import { sqliteEventStoreMigrations } from './migrations.js';
import { sqliteEventStore } from './sqlite-event-store.js';

eventStoreContract('sqlite (file, WAL, power-loss durability)', async (options) => {
  const dir = mkdtempSync(join(tmpdir(), 'intake-es-'));
  const sqlite = openSqlite(join(dir, 'events.db'));
  await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations]);
  const store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7, ...options });
  return {
    store,
    db: sqlite.db,
    async close() {
      await store.close();
      await sqlite.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('sqlite event store reads', () => {
  it('returns fewer events than asked rather than more JSON text than its budget, and always at least one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-es-'));
    const sqlite = openSqlite(join(dir, 'events.db'));
    await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations]);
    // No in-memory tail: every read goes to SQLite.
    const store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7, recentEvents: 0, readBudget: 100 });
    try {
      for (const size of [50, 50, 500, 10])
        await store.append({ streamId: `s-${size}-${Math.random()}`, events: [{ type: 'A', data: { s: 'x'.repeat(size) } }] });
      const sizes = async (after: number) => (await store.readAll({ after, limit: 10 })).map((e) => (e.data as { s: string }).s.length);
      expect(await sizes(0)).toEqual([50]); // the second would pass 100
      expect(await sizes(1)).toEqual([50]); // the third alone is over the budget
      expect(await sizes(2)).toEqual([500]); // over it, yet returned: a read always moves on
      expect(await sizes(3)).toEqual([10]);
      expect(await sizes(4)).toEqual([]);
    } finally {
      await store.close();
      await sqlite.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('hands every reader of the in-memory tail the same event, so its JSON is parsed once for all of them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-es-'));
    const sqlite = openSqlite(join(dir, 'events.db'));
    await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations]);
    const store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7 });
    try {
      await store.append({ streamId: 's-1', events: [{ type: 'A', data: { n: 1 } }] });
      const [first] = await store.readAll({ after: 0, limit: 10 });
      const [second] = await store.readAll({ after: 0, limit: 10 });
      expect(second).toBe(first);
      expect(second?.data).toBe(first?.data);
      expect(first?.data).toEqual({ n: 1 });
    } finally {
      await store.close();
      await sqlite.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lets the tail drop what a named reader has read, so memory holds only what it still needs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-es-'));
    const sqlite = openSqlite(join(dir, 'events.db'));
    await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations]);
    const store = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7 });
    try {
      for (let n = 1; n <= 3; n++) await store.append({ streamId: `s-${n}`, events: [{ type: 'A', data: { n } }] });
      const [kept] = await store.readAll({ after: 0, limit: 10, reader: 'chain' });
      // The same read again is answered from the tail: the very object it keeps.
      expect((await store.readAll({ after: 0, limit: 10 }))[0]).toBe(kept);
      // Reading on after 3, the only reader says it needs nothing up to 3: the next commit drops those.
      expect(await store.readAll({ after: 3, limit: 10, reader: 'chain' })).toEqual([]);
      await store.append({ streamId: 's-4', events: [{ type: 'A', data: { n: 4 } }] });
      const [again] = await store.readAll({ after: 0, limit: 10 });
      expect(again).not.toBe(kept);
      expect(again).toEqual(kept);
    } finally {
      await store.close();
      await sqlite.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('hands over the text of each event it reads, from the tail or from SQLite, so a follow-up event can be spliced from it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-es-'));
    const sqlite = openSqlite(join(dir, 'events.db'));
    await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations]);
    const tailed = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7 });
    const untailed = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7, recentEvents: 0 });
    try {
      await tailed.append({ streamId: 's-1', events: [{ type: 'A', data: { n: 1, s: 'é\u0000"' } }] });
      for (const store of [tailed, untailed]) {
        const [read] = await store.readAll({ after: 0, limit: 10 });
        if (!read) throw new Error('nothing read');
        const next = extendedEvent(read, { type: 'B', data: { ...read.data, at: 'now' } }, { at: 'now' });
        expect(serialize(next).data).toBe(JSON.stringify({ n: 1, s: 'é\u0000"', at: 'now' }));
        expect((next as { [DATA_TEXT]?: string })[DATA_TEXT]).toBeDefined();
      }
    } finally {
      await tailed.close();
      await untailed.close();
      await sqlite.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
