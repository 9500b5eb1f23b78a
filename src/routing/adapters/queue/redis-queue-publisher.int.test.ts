import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTcpProxy } from '../../../../test/support/tcp-proxy.js';
import { deliveryRequest, queuePublisherContract, uniqueSuffix, type ReceivedMessage } from './queue-publisher.contract.js';
import { redisQueuePublisher } from './redis-queue-publisher.js';

type RedisTarget = { readonly broker: 'redis'; readonly url?: string; readonly stream: string };

const url = process.env.TEST_REDIS_URL || undefined;
if (!url) console.warn('skipping Redis queue publisher suites: TEST_REDIS_URL is not set');

const fieldsOf = (flat: string[]) => Object.fromEntries(flat.flatMap((value, i) => (i % 2 === 0 ? [[value, flat[i + 1]]] : [])));

/** One stream key per target, read back with XRANGE. */
function redisAdmin(brokerUrl: string) {
  const redis = new Redis(brokerUrl);
  return {
    redis,
    async createTarget(): Promise<RedisTarget> {
      return { broker: 'redis', stream: `intake-test:${uniqueSuffix()}` };
    },
    async readBack(target: RedisTarget): Promise<ReceivedMessage[]> {
      const entries = await redis.xrange(target.stream, '-', '+');
      return entries.map(([, flat]) => {
        const fields = fieldsOf(flat);
        return { deliveryId: fields.delivery_id, body: String(fields.body) };
      });
    },
    async removeTarget(target: RedisTarget) {
      await redis.del(target.stream);
    },
  };
}

describe.skipIf(!url)('redisQueuePublisher', () => {
  const brokerUrl = url ?? '';

  queuePublisherContract(async () => {
    const admin = redisAdmin(brokerUrl);
    return {
      publisher: redisQueuePublisher({ url: brokerUrl }),
      createTarget: admin.createTarget,
      readBack: admin.readBack,
      removeTarget: admin.removeTarget,
      unreachableTarget: (port) => ({ broker: 'redis', url: `redis://127.0.0.1:${port}`, stream: 'intake-test:unreachable' }),
      close: async () => {
        await admin.redis.quit();
      },
    };
  });

  describe('Redis specifics', () => {
    const admin = redisAdmin(brokerUrl);
    const publisher = redisQueuePublisher({ url: brokerUrl });
    let target: RedisTarget;

    beforeAll(async () => {
      target = await admin.createTarget();
    });
    afterAll(async () => {
      await admin.removeTarget(target);
      await publisher.close();
      await admin.redis.quit();
    });

    it('appends delivery_id, event_type, app_id and body to the stream', async () => {
      const request = deliveryRequest({ eventType: 'cart.updated', appId: 'app_7' });

      expect(await publisher.publish(target, request)).toMatchObject({ outcome: 'delivered' });

      const [[, flat] = ['', []]] = await admin.redis.xrange(target.stream, '-', '+');
      expect(flat).toEqual(['delivery_id', request.deliveryId, 'event_type', 'cart.updated', 'app_id', 'app_7', 'body', request.body]);
    });

    it('answers rejected when the key holds something other than a stream', async () => {
      const key = `intake-test:${uniqueSuffix()}`;
      await admin.redis.set(key, 'a string');

      const outcome = await publisher.publish({ broker: 'redis', stream: key }, deliveryRequest());

      expect(outcome).toMatchObject({ outcome: 'rejected' });
      expect(outcome.outcome === 'rejected' && outcome.reason).toContain('WRONGTYPE');
      await admin.redis.del(key);
    });

    it('drops a broken connection and opens a new one on the next publish', async () => {
      const reconnecting = redisQueuePublisher({ url: brokerUrl });
      const clientIds = async () => new Set(((await admin.redis.client('LIST')) as string).match(/(?<=^id=)\d+/gm));
      const before = await clientIds();
      expect(await reconnecting.publish(target, deliveryRequest())).toMatchObject({ outcome: 'delivered' });
      const [first] = [...(await clientIds())].filter((id) => !before.has(id));

      // The server closes the publisher's connection under it.
      await admin.redis.client('KILL', 'ID', first ?? '');
      await new Promise((resolve) => setTimeout(resolve, 50));

      expect(await reconnecting.publish(target, deliveryRequest())).toMatchObject({ outcome: 'delivered' });
      const [second] = [...(await clientIds())].filter((id) => !before.has(id));
      expect(second).toBeDefined();
      expect(second).not.toBe(first);
      await reconnecting.close();
    });

    it('drops a connection that stopped answering without closing, and publishes through a new one', async () => {
      const broker = new URL(brokerUrl);
      const proxy = await startTcpProxy(Number(broker.port || 6379), broker.hostname);
      const proxied = new URL(brokerUrl);
      proxied.host = `127.0.0.1:${proxy.port}`;
      const publisher = redisQueuePublisher({ url: proxied.href, publishTimeoutMs: 300 });
      const fresh = await admin.createTarget();
      try {
        expect(await publisher.publish(fresh, deliveryRequest())).toMatchObject({ outcome: 'delivered' });

        // The connection stays open and passes nothing, while new ones get through.
        proxy.freezeExisting();
        expect(await publisher.publish(fresh, deliveryRequest())).toMatchObject({ outcome: 'retry' });

        const request = deliveryRequest();
        expect(await publisher.publish(fresh, request)).toMatchObject({ outcome: 'delivered' });
        expect((await admin.readBack(fresh)).map((message) => message.deliveryId)).toContain(request.deliveryId);
      } finally {
        await publisher.close();
        await proxy.close();
        await admin.removeTarget(fresh);
      }
    });
  });
});
