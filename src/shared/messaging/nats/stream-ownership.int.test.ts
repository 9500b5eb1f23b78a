import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { MessageBusConfigurationError, type BusMessage } from '../message-bus.js';
import { natsMessageBus } from './nats-message-bus.js';
import { natsServerAvailable, startPrivateNatsServer, type PrivateNatsServer } from './private-nats-server.js';

if (!natsServerAvailable()) console.warn('skipping stream ownership across a broker restart: nats-server is not installed');

const STREAM = 'OWNED';
const message = (id: string): BusMessage => ({ id, type: 'X', data: {}, metadata: { schema_version: 1 } });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The deployment named in the stream's description, or null when the broker holds no such stream. */
async function ownerOf(nats: PrivateNatsServer): Promise<string | null> {
  const connection = await connect({ servers: nats.url });
  try {
    const info = await (await jetstreamManager(connection)).streams.info(STREAM).catch(() => undefined);
    return info ? (info.config.description ?? '') : null;
  } finally {
    await connection.close();
  }
}

/** Publishes until the bus is connected again after a broker restart; answers the first error that is not a reconnect. */
async function publishOnceReconnected(bus: ReturnType<typeof natsMessageBus>, id: string): Promise<unknown> {
  for (const deadline = Date.now() + 15_000; Date.now() < deadline; await sleep(100)) {
    try {
      await bus.publish('owned.x', message(id));
      return undefined;
    } catch (error) {
      if (error instanceof MessageBusConfigurationError) return error;
    }
  }
  throw new Error('the bus did not publish again');
}

describe.skipIf(!natsServerAvailable())('a stream that belongs to one deployment, across a broker that lost its data', () => {
  it('is never made by a deployment refused once, and is checked again by its owner after reconnecting', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-nats-owner-'));
    const nats = await startPrivateNatsServer(dir);
    const bus = (deployment: string) =>
      natsMessageBus({ servers: nats.url, stream: STREAM, subjects: ['owned.>'], publishTimeoutMs: 2000, deployment });
    const [a, b] = [bus('a'), bus('b')];
    const wipe = async () => {
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
      await nats.restart();
    };
    try {
      await a.publish('owned.x', message('a1'));
      await expect(b.publish('owned.x', message('b1'))).rejects.toBeInstanceOf(MessageBusConfigurationError);
      expect(b.misconfigured?.()).toMatch(/belongs to another Intake deployment \(a\)/);

      // The broker comes back empty: the refused deployment keeps off, the owner makes its stream again.
      await wipe();
      await expect(b.publish('owned.x', message('b2'))).rejects.toBeInstanceOf(MessageBusConfigurationError);
      expect(await ownerOf(nats)).toBeNull();
      expect(await publishOnceReconnected(a, 'a2')).toBeUndefined();
      expect(await ownerOf(nats)).toBe('Intake deployment: a');
      expect(a.misconfigured?.()).toBeUndefined();

      // Empty again, and another deployment makes the stream first: the owner's live session does not
      // publish into it unchecked.
      await wipe();
      const c = bus('c');
      try {
        for (const deadline = Date.now() + 10_000; ; await sleep(100)) {
          const made = await c.publish('owned.x', message('c1')).then(
            () => true,
            () => false,
          );
          if (made) break;
          if (Date.now() > deadline) throw new Error('deployment c did not make the stream');
        }
        expect(await publishOnceReconnected(a, 'a3')).toBeInstanceOf(MessageBusConfigurationError);
        expect(a.misconfigured?.()).toMatch(/belongs to another Intake deployment \(c\)/);
      } finally {
        await c.close();
      }
    } finally {
      await a.close();
      await b.close();
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
