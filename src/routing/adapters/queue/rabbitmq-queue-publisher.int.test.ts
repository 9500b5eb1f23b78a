import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type Channel, type ChannelModel } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTcpProxy, type TcpProxy } from '../../../../test/support/tcp-proxy.js';
import { deliveryRequest, queuePublisherContract, uniqueSuffix, type ReceivedMessage } from './queue-publisher.contract.js';
import { rabbitmqQueuePublisher } from './rabbitmq-queue-publisher.js';

type RabbitTarget = { readonly broker: 'rabbitmq'; readonly url?: string; readonly exchange: string; readonly routing_key: string };

const url = process.env.TEST_RABBITMQ_URL || undefined;
if (!url) console.warn('skipping RabbitMQ queue publisher suites: TEST_RABBITMQ_URL is not set');

/** One direct exchange per target with a queue bound to its routing key, read back with basic.get. */
async function rabbitAdmin(brokerUrl: string) {
  const connection: ChannelModel = await connect(brokerUrl);
  const channel: Channel = await connection.createChannel();
  const queueOf = (target: RabbitTarget) => target.exchange;
  return {
    connection,
    channel,
    async createTarget(): Promise<RabbitTarget> {
      const name = `intake-test-${uniqueSuffix()}`;
      await channel.assertExchange(name, 'direct', { durable: false });
      await channel.assertQueue(name, { durable: false });
      await channel.bindQueue(name, name, 'orders');
      return { broker: 'rabbitmq', exchange: name, routing_key: 'orders' };
    },
    async readBack(target: RabbitTarget, count: number): Promise<ReceivedMessage[]> {
      const received: ReceivedMessage[] = [];
      for (let tries = 0; received.length < count && tries < 100; tries++) {
        const message = await channel.get(queueOf(target), { noAck: true });
        if (message === false) await sleep(20);
        else received.push({ deliveryId: message.properties.messageId as string | undefined, body: message.content.toString('utf8') });
      }
      return received;
    },
    async removeTarget(target: RabbitTarget) {
      await channel.deleteQueue(queueOf(target));
      await channel.deleteExchange(target.exchange);
    },
  };
}

describe.skipIf(!url)('rabbitmqQueuePublisher', () => {
  const brokerUrl = url ?? '';

  queuePublisherContract(async () => {
    const admin = await rabbitAdmin(brokerUrl);
    return {
      publisher: rabbitmqQueuePublisher({ url: brokerUrl }),
      createTarget: admin.createTarget,
      readBack: admin.readBack,
      removeTarget: admin.removeTarget,
      unreachableTarget: (port) => ({ broker: 'rabbitmq', url: `amqp://guest:guest@127.0.0.1:${port}`, exchange: 'x', routing_key: 'k' }),
      close: () => admin.connection.close(),
    };
  });

  describe('RabbitMQ specifics', () => {
    let admin: Awaited<ReturnType<typeof rabbitAdmin>>;
    const publisher = rabbitmqQueuePublisher({ url: brokerUrl });

    beforeAll(async () => {
      admin = await rabbitAdmin(brokerUrl);
    });
    afterAll(async () => {
      await publisher.close();
      await admin.connection.close();
    });

    it('publishes persistent JSON with the delivery id and event type', async () => {
      const target = await admin.createTarget();
      const request = deliveryRequest({ eventType: 'cart.updated', eventId: 'evt_42', appId: 'app_7' });
      await publisher.publish(target, request);

      const message = await admin.channel.get(target.exchange, { noAck: true });
      expect(message && message.properties).toMatchObject({
        messageId: request.deliveryId,
        contentType: 'application/json',
        deliveryMode: 2,
        type: 'cart.updated',
        headers: { 'intake-event-id': 'evt_42', 'intake-app-id': 'app_7', 'intake-event-type': 'cart.updated' },
      });
      await admin.removeTarget(target);
    });

    it('publishes an event type longer than the 255 bytes of the AMQP type property in a header alone', async () => {
      const target = await admin.createTarget();
      const eventType = 'é'.repeat(128);
      expect(await publisher.publish(target, deliveryRequest({ eventType }))).toMatchObject({ outcome: 'delivered' });
      const message = await admin.channel.get(target.exchange, { noAck: true });
      expect(message && message.properties.type).toBeUndefined();
      expect(message && (message.properties.headers as Record<string, unknown>)['intake-event-type']).toBe(eventType);
      await admin.removeTarget(target);
    });

    it('publishes to more exchanges over time than a connection has channels, closing the least recently used', async () => {
      const limited = new URL(brokerUrl);
      limited.searchParams.set('channelMax', '4');
      const few = rabbitmqQueuePublisher({ url: limited.href, maxChannels: 3 });
      const targets = await Promise.all(Array.from({ length: 8 }, () => admin.createTarget()));
      try {
        for (const round of [1, 2])
          for (const target of targets)
            expect(await few.publish(target, deliveryRequest()), `round ${round}`).toMatchObject({ outcome: 'delivered' });
        for (const target of targets) expect(await admin.readBack(target, 2)).toHaveLength(2);
      } finally {
        await few.close();
        for (const target of targets) await admin.removeTarget(target);
      }
    });

    it("fails no other exchange's publishes in flight when one exchange does not exist", async () => {
      const target = await admin.createTarget();
      const missing = { broker: 'rabbitmq' as const, exchange: `intake-test-missing-${uniqueSuffix()}`, routing_key: 'orders' };
      const outcomes = await Promise.all(
        Array.from({ length: 40 }, (_, i) => publisher.publish(i % 4 === 0 ? missing : target, deliveryRequest())),
      );
      expect(outcomes.filter((_, i) => i % 4 !== 0).map((o) => o.outcome)).toEqual(Array(30).fill('delivered'));
      expect(outcomes.filter((_, i) => i % 4 === 0).map((o) => o.outcome)).toEqual(Array(10).fill('rejected'));
      expect(await admin.readBack(target, 30)).toHaveLength(30);
      await admin.removeTarget(target);
    });

    it('answers rejected at once to an exchange or routing key longer than AMQP can encode', async () => {
      const long = 'k'.repeat(300);
      for (const target of [
        { broker: 'rabbitmq' as const, exchange: long, routing_key: 'orders' },
        { broker: 'rabbitmq' as const, exchange: 'amq.direct', routing_key: long },
      ]) {
        const outcome = await publisher.publish(target, deliveryRequest());
        expect(outcome.outcome === 'rejected' && outcome.reason).toMatch(/longer than AMQP's 255 bytes/);
      }
    });

    it('answers rejected when the exchange does not exist, and publishes again afterwards', async () => {
      const missing = `intake-test-missing-${uniqueSuffix()}`;

      const outcome = await publisher.publish({ broker: 'rabbitmq', exchange: missing, routing_key: 'orders' }, deliveryRequest());

      expect(outcome).toMatchObject({ outcome: 'rejected' });
      expect(outcome.outcome === 'rejected' && outcome.reason).toContain(`exchange '${missing}' does not exist`);
      // The broker closed the channel over the missing exchange; the publisher opens another.
      const target = await admin.createTarget();
      expect(await publisher.publish(target, deliveryRequest())).toMatchObject({ outcome: 'delivered' });
      expect(await admin.readBack(target, 1)).toHaveLength(1);
      await admin.removeTarget(target);
    });

    it('answers retry when no queue is bound to the routing key, as the message came back', async () => {
      const target = await admin.createTarget();

      const outcome = await publisher.publish({ ...target, routing_key: 'nobody-listens' }, deliveryRequest());

      expect(outcome).toMatchObject({ outcome: 'retry' });
      expect(outcome.outcome === 'retry' && outcome.reason).toContain(
        `no queue is bound to exchange '${target.exchange}' with routing key 'nobody-listens'`,
      );
      await admin.removeTarget(target);
    });

    it('publishes to a queue through the default exchange', async () => {
      const target = await admin.createTarget();

      const outcome = await publisher.publish({ broker: 'rabbitmq', exchange: '', routing_key: target.exchange }, deliveryRequest());

      expect(outcome).toMatchObject({ outcome: 'delivered' });
      expect(await admin.readBack(target, 1)).toHaveLength(1);
      await admin.removeTarget(target);
    });

    describe('a connection that stays open but stops answering', () => {
      let proxy: TcpProxy;
      let proxied: string;
      beforeAll(async () => {
        const broker = new URL(brokerUrl);
        proxy = await startTcpProxy(Number(broker.port || 5672), broker.hostname);
        broker.host = `127.0.0.1:${proxy.port}`;
        proxied = broker.href;
      });
      afterAll(() => proxy.close());

      it('is dropped when a confirm does not come, and the next publish goes through a new one', async () => {
        const dropping = rabbitmqQueuePublisher({ url: proxied, publishTimeoutMs: 300 });
        const target = await admin.createTarget();
        try {
          expect(await dropping.publish(target, deliveryRequest())).toMatchObject({ outcome: 'delivered' });

          // The connection stays open and passes nothing, while new ones get through.
          proxy.freezeExisting();
          expect(await dropping.publish(target, deliveryRequest())).toMatchObject({ outcome: 'retry' });

          const request = deliveryRequest();
          expect(await dropping.publish(target, request)).toMatchObject({ outcome: 'delivered' });
          expect((await admin.readBack(target, 2)).map((message) => message.deliveryId)).toContain(request.deliveryId);
        } finally {
          await dropping.close();
          await admin.removeTarget(target);
        }
      });

      it('is dropped when a channel for another exchange does not open, rather than holding the publish until the heartbeat', async () => {
        const dropping = rabbitmqQueuePublisher({ url: proxied, publishTimeoutMs: 300 });
        const [first, second] = [await admin.createTarget(), await admin.createTarget()];
        try {
          expect(await dropping.publish(first, deliveryRequest())).toMatchObject({ outcome: 'delivered' });

          proxy.freezeExisting();
          const stuck = await dropping.publish(second, deliveryRequest());
          expect(stuck).toMatchObject({ outcome: 'retry' });
          expect(stuck.durationMs).toBeLessThan(5000);

          expect(await dropping.publish(second, deliveryRequest())).toMatchObject({ outcome: 'delivered' });
          expect(await admin.readBack(second, 1)).toHaveLength(1);
        } finally {
          await dropping.close();
          await admin.removeTarget(first);
          await admin.removeTarget(second);
        }
      }, 15_000);
    });

    it('answers rejected when the broker refuses the credentials, without showing the password', async () => {
      const wrong = new URL(brokerUrl);
      wrong.password = 'surely-not-the-password';

      const outcome = await publisher.publish({ broker: 'rabbitmq', url: wrong.href, exchange: 'x', routing_key: 'k' }, deliveryRequest());

      // A refusal every delivery would meet: it counts against the circuit, which then holds the backlog.
      expect(outcome).toMatchObject({ outcome: 'rejected', refusesAll: true });
      expect(outcome.outcome === 'rejected' && outcome.reason).not.toContain('surely-not-the-password');
    });
  });
});
