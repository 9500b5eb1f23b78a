import { describe, expect, it } from 'vitest';
import { connectionCache } from './connection-cache.js';

/** Connections that are plain objects: the cache's bookkeeping is all this tests. */
function fakeBroker(options: { idleMs?: number } = {}) {
  const opened: { url: string; n: number; forget: () => void; closed: boolean }[] = [];
  let failNext = false;
  const cache = connectionCache(
    async (url, forget) => {
      if (failNext) {
        failNext = false;
        throw new Error('ECONNREFUSED');
      }
      const connection = { url, n: opened.length + 1, forget, closed: false };
      opened.push(connection);
      return connection;
    },
    async (connection) => {
      connection.closed = true;
    },
    options,
  );
  return { cache, opened, failNextOpen: () => (failNext = true) };
}

describe('connectionCache', () => {
  it('opens one connection per URL, lazily, even for concurrent first uses', async () => {
    const { cache, opened } = fakeBroker();
    expect(opened).toHaveLength(0);

    const [a1, a2] = await Promise.all([cache.get('nats://a'), cache.get('nats://a')]);
    const b = await cache.get('nats://b');

    expect(a1).toBe(a2);
    expect(b).not.toBe(a1);
    expect(opened.map((connection) => connection.url)).toEqual(['nats://a', 'nats://b']);
  });

  it('opens a fresh connection after the previous one broke', async () => {
    const { cache } = fakeBroker();
    const first = await cache.get('nats://a');

    first.forget();
    const second = await cache.get('nats://a');

    expect(second.n).toBe(2);
    expect(await cache.get('nats://a')).toBe(second);
  });

  it('ignores a late notice from a connection already replaced', async () => {
    const { cache } = fakeBroker();
    const first = await cache.get('nats://a');
    first.forget();
    const second = await cache.get('nats://a');

    first.forget();

    expect(await cache.get('nats://a')).toBe(second);
  });

  it('opens a fresh connection after one was discarded, and abandons the discarded one at once', async () => {
    const abandoned: number[] = [];
    const cache = connectionCache(
      async (url) => ({ url, n: abandoned.length + 1 }),
      () => new Promise<void>(() => undefined),
      { abandon: (connection) => abandoned.push(connection.n) },
    );
    const first = await cache.get('redis://a');

    cache.discard('redis://a', first);

    expect(abandoned).toEqual([1]);
    expect(await cache.get('redis://a')).not.toBe(first);
  });

  it('keeps the replacement when a connection already replaced is discarded late', async () => {
    const { cache } = fakeBroker();
    const first = await cache.get('nats://a');
    first.forget();
    const second = await cache.get('nats://a');

    cache.discard('nats://a', first);

    expect(first.closed).toBe(true);
    expect(await cache.get('nats://a')).toBe(second);
  });

  it('does not keep a failed open', async () => {
    const { cache, failNextOpen } = fakeBroker();
    failNextOpen();

    await expect(cache.get('nats://a')).rejects.toThrow('ECONNREFUSED');

    expect((await cache.get('nats://a')).n).toBe(1);
  });

  it('closes every connection, and opens none after', async () => {
    const { cache, opened } = fakeBroker();
    await cache.get('nats://a');
    await cache.get('nats://b');

    await cache.closeAll();

    expect(opened.every((connection) => connection.closed)).toBe(true);
    await expect(cache.get('nats://a')).rejects.toThrow('closed');
  });
});

describe('closing connections', () => {
  it('closes a connection no publish has used for a while, and opens a fresh one at the next use; one in use stays', async () => {
    const { cache, opened } = fakeBroker({ idleMs: 100 });
    const gone = await cache.get('nats://deleted-rule');
    const busy = await cache.get('nats://busy');
    for (let waited = 0; waited < 300; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      await cache.get('nats://busy');
    }
    expect(gone.closed).toBe(true);
    expect(busy.closed).toBe(false);
    expect(await cache.get('nats://busy')).toBe(busy);
    const again = await cache.get('nats://deleted-rule');
    expect(again).not.toBe(gone);
    expect(opened.map((connection) => connection.url)).toEqual(['nats://deleted-rule', 'nats://busy', 'nats://deleted-rule']);
    await cache.closeAll();
  });

  it('stops waiting for a connection whose close never ends (a broker gone mid-close), so shutdown goes on', async () => {
    const cache = connectionCache(
      async (url) => ({ url }),
      () => new Promise<void>(() => undefined),
      { closeWaitMs: 50 },
    );
    await cache.get('redis://stuck');
    const started = Date.now();
    await cache.closeAll();
    expect(Date.now() - started).toBeLessThan(2_000);
    await expect(cache.get('redis://stuck')).rejects.toThrow(/closed/);
  });
});
