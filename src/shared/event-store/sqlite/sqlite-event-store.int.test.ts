import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../../clock.js';
import { uuidV7 } from '../../ids.js';
import { migrateToLatest } from '../../sqlite/migrate.js';
import { openSqlite } from '../../sqlite/open-sqlite.js';
import { eventStoreContract } from '../event-store.contract.js';
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
