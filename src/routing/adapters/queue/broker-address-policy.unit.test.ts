import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../shared/errors.js';
import type { QueuePublisher, QueueTarget } from '../../application/destination.js';
import { addressCheckedQueuePublisher, assertBrokerUrl, assertQueueDestination } from './broker-address-policy.js';
import { deliveryRequest } from './queue-publisher.contract.js';

const refusal = (url: string, allowed: readonly string[] = []) => {
  try {
    assertBrokerUrl(url, allowed);
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as ValidationError).violations[0];
  }
};

describe('assertBrokerUrl', () => {
  it.each(['redis://cache.example.com:6379', 'nats://93.184.215.14:4222', 'amqps://user:pw@mq.example.com/vhost'])('accepts %s', (url) => {
    expect(refusal(url)).toBeUndefined();
  });

  it.each([
    'redis://127.0.0.1:6379',
    'redis://localhost:6379',
    'nats://10.0.0.5:4222',
    'nats://mq.example.com:4222,nats://192.168.1.4:4222',
    'amqp://guest:guest@169.254.169.254:5672',
    'amqp://[::1]:5672',
    'redis://[fe80::1]:6379',
    'redis://[2002:7f00:1::]:6379',
    'amqp://[2001:0:4136:e378:8000:63bf:80ff:fffe]:5672',
    'redis://0x7f.1:6379',
    'amqp://2130706433:5672',
    'nats://017700000001:4222',
  ])('refuses %s on save', (url) => {
    expect(refusal(url)).toMatchObject({ path: 'destination_config.url', message: expect.stringMatching(/WEBHOOK_ALLOWED_HOSTS/) });
  });

  it.each([
    // Without a host, ioredis and amqplib connect to localhost.
    ['redis://', /names no host/],
    ['amqp://', /names no host/],
    ['nats://mq.example.com:4222,localhost:4222', /names no host/],
    // ioredis reads host, port and a Unix socket path from the query string.
    ['redis://?host=127.0.0.1&port=6379', /names no host/],
    ['redis://cache.example.com:6379/?host=127.0.0.1', /options \(host\)/],
    ['redis://nonexistent.invalid:6379/?path=/tmp/r.sock', /options \(path\)/],
    ['amqp://mq.example.com/vh?heartbeat=30&host=10.0.0.1', /options \(host\)/],
  ])('refuses %s, which would leave the address to the client', (url, message) => {
    expect(refusal(url)).toMatchObject({ path: 'destination_config.url', message: expect.stringMatching(message) });
  });

  it('accepts the connection tuning amqplib reads from the query string', () => {
    expect(refusal('amqp://mq.example.com/vh?heartbeat=30&frameMax=8192')).toBeUndefined();
  });

  it('accepts what WEBHOOK_ALLOWED_HOSTS allows', () => {
    expect(refusal('redis://127.0.0.1:6379', ['127.0.0.1'])).toBeUndefined();
    expect(refusal('nats://10.0.0.5:4222', ['10.0.0.0/8'])).toBeUndefined();
    expect(refusal('redis://localhost:6379', ['localhost'])).toBeUndefined();
  });
});

describe('addressCheckedQueuePublisher', () => {
  const published: QueueTarget[] = [];
  const inner: QueuePublisher = {
    async publish(target) {
      published.push(target);
      return { outcome: 'delivered', durationMs: 0 };
    },
    async close() {},
  };
  const resolve = async (hostname: string) => (hostname === 'sneaky.example.com' ? ['10.1.2.3'] : ['93.184.215.14']);

  it('rejects a publish whose broker name resolves to a private address, and passes the others on', async () => {
    const publisher = addressCheckedQueuePublisher(inner, [], {}, resolve);
    const refused = await publisher.publish({ broker: 'redis', stream: 's', url: 'redis://sneaky.example.com:6379' }, deliveryRequest());
    expect(refused).toMatchObject({ outcome: 'rejected', reason: expect.stringContaining('10.1.2.3') });
    expect(published).toHaveLength(0);

    expect((await publisher.publish({ broker: 'redis', stream: 's', url: 'redis://ok.example.com' }, deliveryRequest())).outcome).toBe(
      'delivered',
    );
    // The operator's default broker (no URL on the rule) is trusted.
    expect((await publisher.publish({ broker: 'redis', stream: 's' }, deliveryRequest())).outcome).toBe('delivered');
    expect(published).toHaveLength(2);
  });

  it('holds a rule saved before a check to it, and never hands the client a name it could not check', async () => {
    const before = published.length;
    const publisher = addressCheckedQueuePublisher(inner, [], {}, async (hostname) => {
      if (hostname === 'gone.example.com') throw Object.assign(new Error('getaddrinfo ENOTFOUND gone.example.com'), { code: 'ENOTFOUND' });
      return ['93.184.215.14'];
    });
    const hostless = await publisher.publish({ broker: 'redis', stream: 's', url: 'redis://' }, deliveryRequest());
    expect(hostless).toMatchObject({ outcome: 'rejected', reason: expect.stringMatching(/names no host/) });
    const socket = await publisher.publish(
      { broker: 'redis', stream: 's', url: 'redis://ok.example.com/?path=/tmp/r.sock' },
      deliveryRequest(),
    );
    expect(socket).toMatchObject({ outcome: 'rejected', reason: expect.stringMatching(/options \(path\)/) });
    // A name that does not resolve now may later: tried again, not published unchecked.
    const unresolved = await publisher.publish({ broker: 'redis', stream: 's', url: 'redis://gone.example.com:6379' }, deliveryRequest());
    expect(unresolved).toMatchObject({ outcome: 'retry', reason: expect.stringMatching(/gone\.example\.com does not resolve/) });
    expect(published).toHaveLength(before);
  });

  it('lets allowed hosts through', async () => {
    const publisher = addressCheckedQueuePublisher(inner, ['10.0.0.0/8'], {}, resolve);
    expect((await publisher.publish({ broker: 'nats', subject: 'a', url: 'nats://sneaky.example.com' }, deliveryRequest())).outcome).toBe(
      'delivered',
    );
  });
});

describe('default brokers (NATS_URL, RABBITMQ_URL, REDIS_URL)', () => {
  it('refuses a rule with neither URL nor connection when its kind has no default, saying what to set', () => {
    const defaults = new Set(['nats'] as const);
    expect(() => assertQueueDestination({ broker: 'redis' }, [], {}, defaults)).toThrow(/REDIS_URL/);
    expect(() => assertQueueDestination({ broker: 'nats' }, [], {}, defaults)).not.toThrow();
    expect(() => assertQueueDestination({ broker: 'redis', url: 'redis://broker.example:6379' }, [], {}, defaults)).not.toThrow();
    expect(() => assertQueueDestination({ broker: 'redis', connection: 'r' }, [], { r: 'redis://10.0.0.1' }, defaults)).not.toThrow();
  });
});

describe('named brokers (QUEUE_BROKERS)', () => {
  const brokers = { internal: 'redis://10.0.0.7:6379', events: 'nats://127.0.0.1:4222' };

  it('accepts a rule naming a configured broker of its kind, whatever its address', () => {
    expect(() => assertQueueDestination({ broker: 'redis', connection: 'internal' }, [], brokers)).not.toThrow();
    expect(() => assertQueueDestination({ broker: 'nats', connection: 'events' }, [], brokers)).not.toThrow();
  });

  it('refuses an unknown name, or a broker of another kind', () => {
    expect(() => assertQueueDestination({ broker: 'redis', connection: 'nope' }, [], brokers)).toThrow(
      /QUEUE_BROKERS has internal, events/,
    );
    expect(() => assertQueueDestination({ broker: 'nats', connection: 'internal' }, [], brokers)).toThrow(/not a nats broker/);
    expect(() => assertQueueDestination({ broker: 'redis', connection: 'internal' }, [], {})).toThrow(/has none/);
  });

  it('publishes to the configured URL of the name, without the address check', async () => {
    const seen: QueueTarget[] = [];
    const inner: QueuePublisher = {
      async publish(target) {
        seen.push(target);
        return { outcome: 'delivered', durationMs: 0 };
      },
      async close() {},
    };
    const publisher = addressCheckedQueuePublisher(inner, [], brokers);
    expect((await publisher.publish({ broker: 'redis', stream: 's', connection: 'internal' }, deliveryRequest())).outcome).toBe(
      'delivered',
    );
    expect(seen[0]).toMatchObject({ url: 'redis://10.0.0.7:6379' });
    const unknown = await publisher.publish({ broker: 'redis', stream: 's', connection: 'gone' }, deliveryRequest());
    expect(unknown).toMatchObject({ outcome: 'rejected', reason: expect.stringContaining('gone') });
  });
});
