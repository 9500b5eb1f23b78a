import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { messageBusContract } from '../message-bus.contract.js';
import { natsMessageBus } from './nats-message-bus.js';

const url = process.env.TEST_NATS_URL || undefined;
if (!url) console.warn('skipping NATS JetStream suites: TEST_NATS_URL is not set');

describe.skipIf(!url)('nats message bus', () => {
  messageBusContract('nats jetstream (stream per test)', async () => {
    const servers = url ?? '';
    const suffix = randomBytes(6).toString('hex');
    const stream = `INTAKE_TEST_${suffix}`;
    const prefix = `test_${suffix}`;
    const bus = natsMessageBus({ servers, stream, subjects: [`${prefix}.>`] });
    return {
      bus,
      prefix,
      async close() {
        await bus.close();
        const admin = await connect({ servers });
        try {
          await (await jetstreamManager(admin)).streams.delete(stream);
        } finally {
          await admin.close();
        }
      },
    };
  });
});

describe.skipIf(!url)('nats message bus: concurrent handling', () => {
  it('handles messages of different keys at once and messages of one key one after the other, in order', async () => {
    const servers = url ?? '';
    const suffix = randomBytes(6).toString('hex');
    const stream = `INTAKE_TEST_${suffix}`;
    const bus = natsMessageBus({ servers, stream, subjects: [`c_${suffix}.>`] });
    try {
      const running = new Set<string>();
      const overlaps = { sameKey: 0, otherKeys: 0 };
      const seen: Record<string, number[]> = { a: [], b: [], c: [] };
      const total = 30;
      let handled = 0;
      const done = new Promise<void>((resolve) => {
        void bus.consume(
          'concurrent',
          [`c_${suffix}.>`],
          async (message) => {
            const { key, n } = message.data as { key: string; n: number };
            if (running.has(key)) overlaps.sameKey += 1;
            if (running.size > 0) overlaps.otherKeys += 1;
            running.add(key);
            await new Promise((r) => setTimeout(r, 10));
            running.delete(key);
            seen[key]?.push(n);
            if (++handled === total) resolve();
          },
          {
            maxDeliver: 3,
            ackWaitMs: 5000,
            onParked: async () => undefined,
            concurrency: 8,
            keyOf: (m) => (m.data as { key: string }).key,
          },
        );
      });
      for (let n = 0; n < total; n++) {
        const key = ['a', 'b', 'c'][n % 3] ?? 'a';
        await bus.publish(`c_${suffix}.x`, { id: `m-${suffix}-${n}`, type: 'T', data: { key, n }, metadata: {} });
      }
      await done;
      expect(overlaps.sameKey).toBe(0);
      expect(overlaps.otherKeys).toBeGreaterThan(0);
      for (const key of ['a', 'b', 'c']) expect(seen[key]).toEqual([...(seen[key] ?? [])].sort((x, y) => x - y));
    } finally {
      await bus.close();
      const admin = await connect({ servers });
      try {
        await (await jetstreamManager(admin)).streams.delete(stream);
      } finally {
        await admin.close();
      }
    }
  });
});
