import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MessageBusUnavailableError } from '../message-bus.js';
import { natsMessageBus } from './nats-message-bus.js';
import { natsServerAvailable, startPrivateNatsServer, type PrivateNatsServer } from './private-nats-server.js';

if (!natsServerAvailable()) console.warn('skipping the broker outage of the admin calls: nats-server is not installed');

/** Rejects with what `work` rejects with, and how long that took. */
async function failure(work: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  try {
    await work();
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
  throw new Error('expected a failure');
}

describe.skipIf(!natsServerAvailable())('nats message bus: an operator asking while the broker is down', () => {
  it('is told at once that the broker is unavailable (a 503), not after a 5 s timeout as an internal error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-nats-outage-'));
    const nats = await startPrivateNatsServer(dir);
    const bus = natsMessageBus({ servers: nats.url, stream: 'OUTAGE', subjects: ['outage.>'], publishTimeoutMs: 5000 });
    try {
      const consumption = await bus.consume('view', ['outage.>'], () => Promise.resolve(), {
        maxDeliver: 5,
        ackWaitMs: 30_000,
        onParked: () => Promise.resolve(),
      });
      expect(await bus.progress('view')).toMatchObject({ acknowledged: 0, pending: 0 });
      await nats.stop();
      await new Promise((resolve) => setTimeout(resolve, 300));
      for (const call of [() => bus.progress('view'), () => bus.rewind('view')]) {
        const { error, ms } = await failure(call);
        expect(error).toBeInstanceOf(MessageBusUnavailableError);
        expect(ms).toBeLessThan(1000);
      }
      await nats.restart();
      const deadline = Date.now() + 10_000;
      while (bus.unreachable?.() !== undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await bus.progress('view')).toMatchObject({ acknowledged: 0, pending: 0 });
      await consumption.stop();
    } finally {
      await bus.close();
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A bus on a private nats-server of its own, both gone when `work` ends. */
async function withPrivateBus(
  name: string,
  options: { jetstream?: boolean },
  work: (bus: ReturnType<typeof natsMessageBus>, nats: PrivateNatsServer) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `intake-nats-${name}-`));
  const nats = await startPrivateNatsServer(dir, options);
  const bus = natsMessageBus({ servers: nats.url, stream: name.toUpperCase(), subjects: [`${name}.>`], publishTimeoutMs: 2000 });
  try {
    await work(bus, nats);
  } finally {
    await bus.close();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(!natsServerAvailable())('nats message bus on a server without JetStream', () => {
  it(
    'says it cannot reach the broker, and leaves no connection behind for each attempt',
    () =>
      withPrivateBus('nojs', { jetstream: false }, async (bus, nats) => {
        for (let attempt = 0; attempt < 4; attempt++) {
          await expect(
            bus.publish('nojs.x', { id: `m${attempt}`, type: 'X', data: {}, metadata: { schema_version: 1 } }),
          ).rejects.toThrow();
        }
        const connz = (await (await fetch(`${nats.monitorUrl}/connz`)).json()) as { num_connections: number };
        expect(connz.num_connections).toBe(0);
        expect(bus.unreachable?.()).toMatch(/cannot reach NATS/);
      }),
    30_000,
  );
});

describe.skipIf(!natsServerAvailable())('nats message bus that has not published yet', () => {
  it(
    'connects when asked whether it can reach the broker, so readiness does not say "connecting" until the first event',
    () =>
      withPrivateBus('idle', {}, async (bus) => {
        expect(bus.unreachable?.()).toMatch(/connecting/);
        const deadline = Date.now() + 10_000;
        while (bus.unreachable?.() !== undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
        expect(bus.unreachable?.()).toBeUndefined();
      }),
    30_000,
  );
});
