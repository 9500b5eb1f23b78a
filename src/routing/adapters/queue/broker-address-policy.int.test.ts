import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterEach, describe, expect, it } from 'vitest';
import { natsServerAvailable, startPrivateNatsServer } from '../../../shared/messaging/nats/private-nats-server.js';
import { auth, startTestIntake, type TestIntake } from '../../../../test/support/embedded-intake.js';

let intake: TestIntake | undefined;
afterEach(async () => intake?.dispose());

async function saveQueueRule(env: Record<string, string>, url: string | undefined, connection?: string, stream = 'orders') {
  intake = await startTestIntake(env);
  const headers = { ...auth, 'content-type': 'application/json' };
  await intake.app.inject({ method: 'POST', url: '/api/applications', headers, payload: JSON.stringify({ name: 'Shop', app_id: 'shop' }) });
  return intake.app.inject({
    method: 'POST',
    url: '/api/routing-rules',
    headers,
    payload: JSON.stringify({
      app_id: 'shop',
      rule_name: 'to a queue',
      destination_type: 'queue',
      destination_config: { broker: 'redis', stream, ...(url ? { url } : {}), ...(connection ? { connection } : {}) },
    }),
  });
}

describe('queue destinations follow the address policy', () => {
  it('refuses a rule whose broker URL is on a private or link-local address', async () => {
    // Without a host the client goes to this machine; ioredis takes a host, port or socket from the query.
    for (const url of ['redis://127.0.0.1:6379', 'redis://169.254.169.254:6379', 'redis://', 'redis://?host=127.0.0.1&port=6379']) {
      const response = await saveQueueRule({}, url);
      expect(response.statusCode).toBe(400);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.json().errors[0]).toMatchObject({ path: 'destination_config.url' });
      await intake?.dispose();
      intake = undefined;
    }
  });

  it('accepts it when WEBHOOK_ALLOWED_HOSTS allows the address', async () => {
    expect((await saveQueueRule({ WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' }, 'redis://127.0.0.1:6379')).statusCode).toBe(201);
  });
});

const redisUrl = process.env.TEST_REDIS_URL;

describe('named brokers (QUEUE_BROKERS)', () => {
  it('accept a rule naming a configured broker on a private address, and refuse an unknown name', async () => {
    const env = { QUEUE_BROKERS: 'internal=redis://10.0.0.7:6379' };
    expect((await saveQueueRule(env, undefined, 'internal')).statusCode).toBe(201);
    await intake?.dispose();
    const unknown = await saveQueueRule(env, undefined, 'elsewhere');
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().errors[0]).toMatchObject({ path: 'destination_config.connection' });
  });

  it.skipIf(!redisUrl)('deliver to the named broker', async () => {
    const { Redis } = await import('ioredis');
    const redis = new Redis(redisUrl ?? '');
    const stream = `intake-test-${Math.random().toString(36).slice(2)}`;
    try {
      expect((await saveQueueRule({ QUEUE_BROKERS: `local=${redisUrl}` }, undefined, 'local', stream)).statusCode).toBe(201);
      const headers = { ...auth, 'content-type': 'application/json' };
      await intake?.app.inject({
        method: 'POST',
        url: '/api/ingest/shop',
        headers,
        payload: JSON.stringify({ event_type: 'e', payload: {} }),
      });
      await expect.poll(() => redis.xlen(stream), { timeout: 10_000 }).toBe(1);
    } finally {
      await redis.del(stream);
      redis.disconnect();
    }
  });
});

describe.skipIf(!natsServerAvailable())('a NATS broker URL with a user and password', () => {
  it('is saved with the password masked, and delivered to with it, on a host without a dot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'intake-nats-auth-'));
    const nats = await startPrivateNatsServer(dir, { user: 'intake', pass: 's3cret' });
    const admin = await connect({ servers: nats.url, user: 'intake', pass: 's3cret' });
    try {
      const streams = await jetstreamManager(admin);
      await streams.streams.add({ name: 'ORDERS', subjects: ['orders.>'] });
      // `localhost` stands for a docker-compose service name such as `nats`; the policy lets it through when allowed.
      intake = await startTestIntake({ WEBHOOK_ALLOWED_HOSTS: 'localhost' });
      const headers = { ...auth, 'content-type': 'application/json' };
      await intake.app.inject({
        method: 'POST',
        url: '/api/applications',
        headers,
        payload: JSON.stringify({ name: 'Shop', app_id: 'shop' }),
      });
      const url = `nats://intake:s3cret@localhost:${new URL(nats.url).port}`;
      const saved = await intake.app.inject({
        method: 'POST',
        url: '/api/routing-rules',
        headers,
        payload: JSON.stringify({
          app_id: 'shop',
          rule_name: 'to NATS',
          destination_type: 'queue',
          destination_config: { broker: 'nats', url, subject: 'orders.paid' },
        }),
      });
      expect(saved.statusCode).toBe(201);
      expect(saved.body).not.toContain('s3cret');

      await intake.app.inject({
        method: 'POST',
        url: '/api/ingest/shop',
        headers,
        payload: JSON.stringify({ event_type: 'e', payload: {} }),
      });

      await expect.poll(async () => (await streams.streams.info('ORDERS')).state.messages, { timeout: 10_000 }).toBe(1);
    } finally {
      await admin.close();
      await intake?.dispose();
      intake = undefined;
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
