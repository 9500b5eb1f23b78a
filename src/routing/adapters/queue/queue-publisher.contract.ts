import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryRequest, QueuePublisher, QueueTarget } from '../../application/destination.js';

/** What the contract needs from a real broker, beside the publisher under test. */
export interface BrokerFixture<Target extends QueueTarget> {
  readonly publisher: QueuePublisher;
  /** A fresh destination with a unique name, ready to be read back. */
  createTarget(): Promise<Target>;
  /** Consumes what reached the destination, waiting until `count` messages are there. */
  readBack(target: Target, count: number): Promise<ReceivedMessage[]>;
  removeTarget(target: Target): Promise<void>;
  /** The same kind of target pointed at a port nobody listens on. */
  unreachableTarget(port: number): Target;
  close(): Promise<void>;
}

export interface ReceivedMessage {
  readonly deliveryId: string | undefined;
  readonly body: string;
}

export const uniqueSuffix = () => `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;

export const deliveryRequest = (overrides: Partial<DeliveryRequest> = {}): DeliveryRequest => ({
  deliveryId: `dlv_${uniqueSuffix()}`,
  attempt: 1,
  body: JSON.stringify({ event_type: 'order.paid', payload: { total: 42, note: 'é ✓' } }),
  eventId: 'evt_1',
  appId: 'app_1',
  eventType: 'order.paid',
  ...overrides,
});

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no TCP port');
  return address.port;
}

/** Every queue publisher, whatever its broker, keeps these promises. */
export function queuePublisherContract<Target extends QueueTarget>(setUp: () => Promise<BrokerFixture<Target>>): void {
  describe('the QueuePublisher contract', () => {
    let fixture: BrokerFixture<Target>;
    const targets: Target[] = [];
    const freshTarget = async () => {
      const target = await fixture.createTarget();
      targets.push(target);
      return target;
    };

    beforeAll(async () => {
      fixture = await setUp();
    });
    afterEach(async () => {
      await Promise.all(targets.splice(0).map((target) => fixture.removeTarget(target)));
    });
    afterAll(async () => {
      await fixture.publisher.close();
      await fixture.close();
    });

    it('answers delivered once the broker has the message, which arrives with its body and delivery id', async () => {
      const target = await freshTarget();
      const request = deliveryRequest();

      const outcome = await fixture.publisher.publish(target, request);

      expect(outcome).toMatchObject({ outcome: 'delivered' });
      expect(outcome.durationMs).toBeGreaterThanOrEqual(0);
      expect(await fixture.readBack(target, 1)).toEqual([{ deliveryId: request.deliveryId, body: request.body }]);
    });

    it('delivers one message per publish, in order, over one reused connection', async () => {
      const target = await freshTarget();
      const requests = [1, 2, 3].map((n) => deliveryRequest({ body: JSON.stringify({ n }) }));

      for (const request of requests) expect((await fixture.publisher.publish(target, request)).outcome).toBe('delivered');

      expect(await fixture.readBack(target, 3)).toEqual(requests.map(({ deliveryId, body }) => ({ deliveryId, body })));
    });

    it('answers retry, quickly, when the broker cannot be reached', async () => {
      const target = fixture.unreachableTarget(await freePort());

      const outcome = await fixture.publisher.publish(target, deliveryRequest());

      expect(outcome).toMatchObject({ outcome: 'retry' });
      expect(outcome.outcome === 'retry' && outcome.reason).toMatch(/unreachable/);
      expect(outcome.durationMs).toBeLessThan(2500);
    });

    it('answers rejected to a target of another broker', async () => {
      const foreign: QueueTarget[] = [
        { broker: 'nats', subject: 'a' },
        { broker: 'rabbitmq', exchange: 'a', routing_key: 'b' },
        { broker: 'redis', stream: 'a' },
      ];
      const target = await freshTarget();
      const other = foreign.find((candidate) => candidate.broker !== target.broker);

      expect(other && (await fixture.publisher.publish(other, deliveryRequest()))).toMatchObject({ outcome: 'rejected' });
    });
  });
}
