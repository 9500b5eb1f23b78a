import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { lockKeys } from './key-locks.js';
import { testDatabases } from './test-databases.js';

const [, postgres] = testDatabases([]);

describe.skipIf(postgres.skip)('key locks on PostgreSQL', () => {
  it('make a second transaction on a shared key wait for the first to end, and leave other keys and spaces free', async () => {
    const handle = await postgres.open();
    try {
      const order: string[] = [];
      let release: () => void = () => undefined;
      const held = new Promise<void>((resolve) => (release = resolve));
      const first = handle.db.transaction().execute(async (tx) => {
        await lockKeys(tx, 1, ['item-b', 'item-a']);
        order.push('first holds a and b');
        await held;
        order.push('first ends');
      });
      await sleep(100);
      // Another key, and the same key in another space, do not wait.
      await handle.db.transaction().execute((tx) => lockKeys(tx, 1, ['item-c']));
      await handle.db.transaction().execute((tx) => lockKeys(tx, 2, ['item-a']));
      const second = handle.db.transaction().execute(async (tx) => {
        await lockKeys(tx, 1, ['item-a', 'item-z']);
        order.push('second holds a');
      });
      await sleep(200);
      expect(order).toEqual(['first holds a and b']);
      release();
      await Promise.all([first, second]);
      expect(order).toEqual(['first holds a and b', 'first ends', 'second holds a']);
    } finally {
      await handle.close();
    }
  });
});
