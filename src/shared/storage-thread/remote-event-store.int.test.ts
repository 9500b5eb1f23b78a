import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../clock.js';
import { ValidationError } from '../errors.js';
import { eventStoreContract } from '../event-store/event-store.contract.js';
import { sqliteEventStoreMigrations } from '../event-store/sqlite/migrations.js';
import { sqliteEventStore } from '../event-store/sqlite/sqlite-event-store.js';
import { uuidV7 } from '../ids.js';
import { localProcedures } from '../procedures.js';
import { migrateToLatest } from '../sqlite/migrate.js';
import { openSqlite } from '../sqlite/open-sqlite.js';
import type { StorageMessage } from './protocol.js';
import { storageClient, type StoragePort } from './storage-client.js';
import { serveStorage } from './storage-server.js';

/** The HTTP thread's store over a message channel to a storage side in this thread: the same protocol as with a worker. */
async function remoteStore(options: Parameters<typeof sqliteEventStore>[0] extends infer O ? Partial<O> : never = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'intake-remote-'));
  const sqlite = openSqlite(join(dir, 'events.db'));
  await migrateToLatest(sqlite.db, [sqliteEventStoreMigrations]);
  const local = await sqliteEventStore({ sqlite, clock: systemClock, newId: uuidV7, ...options });
  const procedures = localProcedures();
  const { port1, port2 } = new MessageChannel();
  const server = serveStorage({ port: port2, store: local, procedures });
  const client = storageClient(port1 as unknown as StoragePort, local);
  return {
    store: client.store,
    local,
    client,
    procedures,
    db: sqlite.db,
    transactions: false,
    async close() {
      server.close();
      port1.close();
      await local.close();
      await sqlite.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

eventStoreContract('sqlite through the storage thread protocol', (options) => remoteStore(options));

describe('storage thread protocol', () => {
  it('gathers the calls of one tick into messages of at most sixteen calls', async () => {
    const remote = await remoteStore();
    try {
      const messages: number[] = [];
      const { port1, port2 } = new MessageChannel();
      // A second client on a counting channel, forwarding to the same server.
      const counting: StoragePort = {
        postMessage(message) {
          messages.push(message.calls.length);
          port1.postMessage(message);
        },
        on: (_event, listener) => port1.on('message', (m: StorageMessage) => listener(m)),
      };
      const server = serveStorage({ port: port2, store: remote.local, procedures: remote.procedures });
      const client = storageClient(counting, remote.local);
      await Promise.all(
        Array.from({ length: 50 }, (_, i) => client.store.append({ streamId: `t-${i}`, events: [{ type: 'A', data: { i } }] })),
      );
      expect(messages).toEqual([16, 16, 16, 2]);
      messages.length = 0;
      await Promise.all(
        Array.from({ length: 3 }, (_, i) => client.store.append({ streamId: `u-${i}`, events: [{ type: 'A', data: { i } }] })),
      );
      expect(messages).toEqual([3]);
      server.close();
      port1.close();
    } finally {
      await remote.close();
    }
  });

  it('runs procedures by name and brings their domain errors back as the same kind', async () => {
    const remote = await remoteStore();
    try {
      remote.procedures.define('test.double', async (n: number) => n * 2);
      remote.procedures.define('test.refuse', async () => {
        throw new ValidationError('test.refused', 'no', [{ path: 'x', message: 'bad' }]);
      });
      const double = remote.client.procedures.define('test.double', async (n: number) => n);
      const refuse = remote.client.procedures.define('test.refuse', async () => undefined);
      expect(await double(21)).toBe(42);
      const error = await refuse().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).violations).toEqual([{ path: 'x', message: 'bad' }]);
    } finally {
      await remote.close();
    }
  });

  it('fails only the call whose arguments cannot cross threads', async () => {
    const remote = await remoteStore();
    try {
      remote.procedures.define('test.echo', async (value: unknown) => (typeof value === 'object' ? 'object' : String(value)));
      const echo = remote.client.procedures.define('test.echo', async (_value: unknown) => '');
      const outcomes = await Promise.allSettled([echo(1), echo({ f: () => 1 }), echo(2)]);
      expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect((outcomes[1] as PromiseRejectedResult).reason).toBeInstanceOf(ValidationError);
    } finally {
      await remote.close();
    }
  });
});
