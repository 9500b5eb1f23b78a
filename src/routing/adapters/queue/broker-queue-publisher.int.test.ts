import { jetstreamManager } from '@nats-io/jetstream';
import { connect as connectNats } from '@nats-io/transport-node';
import { connect as connectRabbit } from 'amqplib';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import type { QueueTarget } from '../../application/destination.js';
import { brokerQueuePublisher } from './broker-queue-publisher.js';
import { deliveryRequest, freePort, uniqueSuffix } from './queue-publisher.contract.js';

const natsUrl = process.env.TEST_NATS_URL || undefined;
const rabbitmqUrl = process.env.TEST_RABBITMQ_URL || undefined;
const redisUrl = process.env.TEST_REDIS_URL || undefined;

describe('brokerQueuePublisher', () => {
  it('answers rejected when a broker has no URL, in the target or by default', async () => {
    const publisher = brokerQueuePublisher();
    const targets: QueueTarget[] = [
      { broker: 'nats', subject: 'a.b' },
      { broker: 'rabbitmq', exchange: 'a', routing_key: 'b' },
      { broker: 'redis', stream: 'a' },
    ];

    for (const target of targets) {
      const outcome = await publisher.publish(target, deliveryRequest());
      expect(outcome).toMatchObject({ outcome: 'rejected' });
      expect(outcome.outcome === 'rejected' && outcome.reason).toContain(`no ${target.broker} URL`);
    }
    await publisher.close();
  });

  it('answers rejected to a broker it does not know', async () => {
    const publisher = brokerQueuePublisher();
    const stored = JSON.parse('{"broker":"kafka","topic":"t"}') as QueueTarget;

    expect(await publisher.publish(stored, deliveryRequest())).toMatchObject({ outcome: 'rejected', reason: 'unknown broker "kafka"' });
    await publisher.close();
  });

  it('prefers the URL of the target to the default', async () => {
    const publisher = brokerQueuePublisher({ defaults: { redisUrl: 'redis://127.0.0.1:6379' }, connectTimeoutMs: 500 });
    const port = await freePort();

    const outcome = await publisher.publish({ broker: 'redis', url: `redis://127.0.0.1:${port}`, stream: 's' }, deliveryRequest());

    expect(outcome.outcome === 'retry' && outcome.reason).toContain(`127.0.0.1:${port}`);
    await publisher.close();
  });

  describe.skipIf(!natsUrl || !rabbitmqUrl || !redisUrl)('with every broker running', () => {
    it('hands each target to its broker, using the default URLs', async () => {
      const suffix = uniqueSuffix();
      const publisher = brokerQueuePublisher({ defaults: { natsUrl, rabbitmqUrl, redisUrl } });
      const nats = await connectNats({ servers: natsUrl ?? '' });
      const streams = await jetstreamManager(nats);
      const rabbit = await connectRabbit(rabbitmqUrl ?? '');
      const channel = await rabbit.createChannel();
      const redis = new Redis(redisUrl ?? '');
      const stream = `INTAKE_TEST_${suffix.replaceAll('-', '_')}`;
      const queue = `intake-test-${suffix}`;
      try {
        await streams.streams.add({ name: stream, subjects: [`${stream}.>`] });
        await channel.assertQueue(queue, { durable: false });

        const request = deliveryRequest();
        const outcomes = await Promise.all([
          publisher.publish({ broker: 'nats', subject: `${stream}.orders` }, request),
          publisher.publish({ broker: 'rabbitmq', exchange: '', routing_key: queue }, request),
          publisher.publish({ broker: 'redis', stream: `intake-test:${suffix}` }, request),
        ]);

        expect(outcomes.map((outcome) => outcome.outcome)).toEqual(['delivered', 'delivered', 'delivered']);
        expect((await streams.streams.info(stream)).state.messages).toBe(1);
        expect((await channel.checkQueue(queue)).messageCount).toBe(1);
        expect(await redis.xlen(`intake-test:${suffix}`)).toBe(1);
      } finally {
        await publisher.close();
        await streams.streams.delete(stream).catch(() => undefined);
        await channel.deleteQueue(queue);
        await rabbit.close();
        await nats.close();
        await redis.del(`intake-test:${suffix}`);
        await redis.quit();
      }
    });
  });
});
