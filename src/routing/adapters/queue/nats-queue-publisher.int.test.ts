import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTcpProxy } from '../../../../test/support/tcp-proxy.js';
import { natsServerAvailable, startPrivateNatsServer, type PrivateNatsServer } from '../../../shared/messaging/nats/private-nats-server.js';
import { natsQueuePublisher } from './nats-queue-publisher.js';
import { deliveryRequest, queuePublisherContract, uniqueSuffix, type ReceivedMessage } from './queue-publisher.contract.js';

type NatsTarget = { readonly broker: 'nats'; readonly url?: string; readonly subject: string };

const url = process.env.TEST_NATS_URL || undefined;
if (!url) console.warn('skipping NATS queue publisher suites: TEST_NATS_URL is not set');

/** One stream per target, capturing `intake-test.<suffix>.>`, read back with an ordered consumer. */
async function natsAdmin(servers: string) {
  const connection = await connect({ servers });
  const manager = await jetstreamManager(connection);
  const streams = new Map<string, string>();
  return {
    connection,
    manager,
    async createTarget(): Promise<NatsTarget> {
      const suffix = uniqueSuffix().replaceAll('-', '_');
      const name = `INTAKE_TEST_${suffix}`;
      await manager.streams.add({ name, subjects: [`intake-test.${suffix}.>`] });
      const subject = `intake-test.${suffix}.orders`;
      streams.set(subject, name);
      return { broker: 'nats', subject };
    },
    async readBack(target: NatsTarget, count: number): Promise<ReceivedMessage[]> {
      const consumer = await jetstream(connection).consumers.get(streams.get(target.subject) ?? '');
      const received: ReceivedMessage[] = [];
      const messages = await consumer.fetch({ max_messages: count, expires: 2000 });
      for await (const message of messages) {
        received.push({ deliveryId: message.headers?.get('Nats-Msg-Id'), body: message.string() });
      }
      return received;
    },
    async removeTarget(target: NatsTarget) {
      const stream = streams.get(target.subject);
      if (stream !== undefined) await manager.streams.delete(stream);
    },
  };
}

describe.skipIf(!url)('natsQueuePublisher', () => {
  const servers = url ?? '';

  queuePublisherContract(async () => {
    const admin = await natsAdmin(servers);
    return {
      publisher: natsQueuePublisher({ url: servers }),
      createTarget: admin.createTarget,
      readBack: admin.readBack,
      removeTarget: admin.removeTarget,
      unreachableTarget: (port) => ({ broker: 'nats', url: `nats://127.0.0.1:${port}`, subject: 'intake-test.unreachable' }),
      close: () => admin.connection.close(),
    };
  });

  describe('JetStream specifics', () => {
    let admin: Awaited<ReturnType<typeof natsAdmin>>;
    const publisher = natsQueuePublisher({ url: servers });

    beforeAll(async () => {
      admin = await natsAdmin(servers);
    });
    afterAll(async () => {
      await publisher.close();
      await admin.connection.close();
    });

    it('answers rejected, saying why, when no stream captures the subject', async () => {
      const subject = `intake-test.${uniqueSuffix().replaceAll('-', '_')}.nowhere`;

      const outcome = await publisher.publish({ broker: 'nats', subject }, deliveryRequest());

      expect(outcome).toMatchObject({ outcome: 'rejected' });
      expect(outcome.outcome === 'rejected' && outcome.reason).toBe(
        `no JetStream stream captures the subject ${subject}: create one before routing to it`,
      );
    });

    it('stores a retried publish of the same delivery once', async () => {
      const target = await admin.createTarget();
      const request = deliveryRequest();

      expect(await publisher.publish(target, request)).toMatchObject({ outcome: 'delivered' });
      expect(await publisher.publish(target, { ...request, attempt: 2 })).toMatchObject({ outcome: 'delivered' });

      const stream = await admin.manager.streams.info((await admin.manager.streams.find(target.subject)) ?? '');
      expect(stream.state.messages).toBe(1);
      await admin.removeTarget(target);
    });

    it('sends the event metadata as headers', async () => {
      const target = await admin.createTarget();
      const request = deliveryRequest({ eventId: 'evt_42', eventType: 'cart.updated', appId: 'app_7' });
      await publisher.publish(target, request);

      const consumer = await jetstream(admin.connection).consumers.get((await admin.manager.streams.find(target.subject)) ?? '');
      const message = await consumer.next({ expires: 2000 });
      expect(message?.headers?.get('Intake-Event-Id')).toBe('evt_42');
      expect(message?.headers?.get('Intake-Event-Type')).toBe('cart.updated');
      expect(message?.headers?.get('Intake-App-Id')).toBe('app_7');
      await admin.removeTarget(target);
    });

    it('answers rejected to a message too large for the server or the stream', async () => {
      const target = await admin.createTarget();
      const stream = (await admin.manager.streams.find(target.subject)) ?? '';
      await admin.manager.streams.update(stream, { max_msg_size: 1000 });

      const tooLargeForServer = await publisher.publish(target, deliveryRequest({ body: JSON.stringify({ pad: 'x'.repeat(2_000_000) }) }));
      const tooLargeForStream = await publisher.publish(target, deliveryRequest({ body: JSON.stringify({ pad: 'x'.repeat(5000) }) }));

      expect(tooLargeForServer.outcome === 'rejected' && tooLargeForServer.reason).toContain('max_payload');
      expect(tooLargeForStream.outcome === 'rejected' && tooLargeForStream.reason).toContain('message size exceeds maximum');
      await admin.removeTarget(target);
    });

    it('answers rejected to subjects one cannot publish to', async () => {
      for (const subject of ['', 'has space', 'wild.*', 'tail.>', 'empty..token']) {
        expect(await publisher.publish({ broker: 'nats', subject }, deliveryRequest())).toMatchObject({ outcome: 'rejected' });
      }
    });

    it('answers rejected to a subject too long to publish, sending nothing that would close the connection other rules share', async () => {
      const target = await admin.createTarget();
      const long = { broker: 'nats' as const, subject: `${target.subject}.${'a'.repeat(5000)}` };

      const outcomes = await Promise.all([publisher.publish(long, deliveryRequest()), publisher.publish(target, deliveryRequest())]);

      expect(outcomes.map((o) => o.outcome)).toEqual(['rejected', 'delivered']);
      expect(await publisher.publish(target, deliveryRequest())).toMatchObject({ outcome: 'delivered' });
      await admin.removeTarget(target);
    });

    it('drops a connection that stopped answering without closing, and publishes through a new one', async () => {
      const broker = new URL(servers);
      const proxy = await startTcpProxy(Number(broker.port || 4222), broker.hostname);
      broker.host = `127.0.0.1:${proxy.port}`;
      const dropping = natsQueuePublisher({ url: broker.href, publishTimeoutMs: 300 });
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
        await proxy.close();
        await admin.removeTarget(target);
      }
    });

    it('answers rejected when neither the target nor the publisher names a server', async () => {
      const withoutDefault = natsQueuePublisher();

      expect(await withoutDefault.publish({ broker: 'nats', subject: 'a.b' }, deliveryRequest())).toMatchObject({ outcome: 'rejected' });
      await withoutDefault.close();
    });
  });
});

/** A listener counting its connections; `serve` speaks to each. */
async function listener(serve: (socket: Socket, server: Server) => void = () => {}) {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    serve(socket, server);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : 0,
    connections: () => sockets.size,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

describe('natsQueuePublisher and the servers a broker advertises', () => {
  it('never connects to a server the broker names in connect_urls, nor reconnects by itself', async () => {
    // What a rule's broker could advertise: an address the policy would refuse.
    const internal = await listener();
    const info = `INFO {"server_id":"fake","version":"2.10.0","proto":1,"max_payload":1048576,"headers":true,"connect_urls":["127.0.0.1:${internal.port}"]}\r\n`;
    const broker = await listener((socket, server) => {
      socket.write(info);
      socket.on('data', (data) => {
        if (data.includes('PING')) socket.write(`PONG\r\n${info}`);
        if (data.includes('PUB')) {
          socket.destroy();
          server.close();
        }
      });
    });
    const publisher = natsQueuePublisher({ connectTimeoutMs: 500, publishTimeoutMs: 500 });
    try {
      const target = { broker: 'nats' as const, url: `nats://127.0.0.1:${broker.port}`, subject: 'intake-test.advertised' };
      const outcome = await publisher.publish(target, deliveryRequest());
      expect(outcome.outcome).toBe('retry');
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect(broker.connections()).toBe(1);
      expect(internal.connections()).toBe(0);
    } finally {
      await publisher.close();
      broker.close();
      internal.close();
    }
  });
});

describe.skipIf(!natsServerAvailable())('natsQueuePublisher and a broker asking for a user and password', () => {
  const dir = mkdtempSync(join(tmpdir(), 'intake-nats-auth-'));
  let server: PrivateNatsServer;
  let port: string;

  beforeAll(async () => {
    server = await startPrivateNatsServer(dir, { user: 'intake', pass: 's:cret' });
    port = new URL(server.url).port;
  });
  afterAll(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('publishes with the credentials of the URL, whose host may have no dot (a docker-compose service name)', async () => {
    const admin = await connect({ servers: server.url, user: 'intake', pass: 's:cret' });
    await (await jetstreamManager(admin)).streams.add({ name: 'AUTH', subjects: ['auth.>'] });
    const publisher = natsQueuePublisher();
    try {
      const target = { broker: 'nats' as const, url: `nats://intake:s%3Acret@localhost:${port}`, subject: 'auth.orders' };

      expect(await publisher.publish(target, deliveryRequest())).toMatchObject({ outcome: 'delivered' });
    } finally {
      await publisher.close();
      await admin.close();
    }
  });

  it('answers rejected to wrong credentials, without showing the password', async () => {
    const publisher = natsQueuePublisher({ connectTimeoutMs: 2000 });
    try {
      const target = { broker: 'nats' as const, url: `nats://intake:wrong-pw@localhost:${port}`, subject: 'auth.orders' };

      const outcome = await publisher.publish(target, deliveryRequest());

      expect(outcome).toMatchObject({ outcome: 'rejected', refusesAll: true });
      expect(outcome.outcome === 'rejected' && outcome.reason).toContain(`NATS at nats://***@localhost:${port} refused the credentials`);
      expect(JSON.stringify(outcome)).not.toContain('wrong-pw');
    } finally {
      await publisher.close();
    }
  });
});
