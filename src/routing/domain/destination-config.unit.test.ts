import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../shared/errors.js';
import { parseDestination } from './destination-config.js';

const webhook = (headers: Record<string, string>) => parseDestination('webhook', { url: 'https://example.com/hook', headers });

describe('webhook destination headers', () => {
  it('keeps the headers HTTP can carry', () => {
    expect(webhook({ Authorization: 'Bearer abc', 'X-Team': 'growth\tops', 'X-Name': 'Zoë' }).config).toMatchObject({
      headers: { Authorization: 'Bearer abc', 'X-Team': 'growth\tops', 'X-Name': 'Zoë' },
    });
  });

  it.each([
    ['a line break, which would inject a header', 'a\r\nX-Injected: 1'],
    ['a bare line feed', 'a\nb'],
    ['a NUL', 'a\u0000b'],
    ['a character beyond Latin-1', 'price in €'],
  ])('refuses a value holding %s when the rule is saved', (_name, value) => {
    let error: unknown;
    try {
      webhook({ 'X-Ok': 'fine', 'X-Bad': value });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).violations).toEqual([
      { path: 'destination_config.headers.X-Bad', message: expect.stringMatching(/cannot send/) as unknown },
    ]);
  });
});

describe('webhook headers Intake sets', () => {
  it.each(['Host', 'content-length', 'Transfer-Encoding', 'Connection', 'Upgrade', 'Content-Type', 'Webhook-Signature'])(
    'refuses %s when the rule is saved, naming it',
    (name) => {
      expect(() => webhook({ Authorization: 'Bearer abc', [name]: 'x' })).toThrow(
        `destination_config.headers.${name} is set by Intake on every webhook: remove it`,
      );
    },
  );

  it('lets a rule that stored one before keep it while its destination is unchanged', () => {
    const config = { url: 'https://example.com/hook', headers: { Host: 'example.org' } };

    expect(parseDestination('webhook', config, { unchanged: true }).config).toEqual(config);
  });
});

describe('NATS queue destinations', () => {
  it('refuse a subject, exchange or routing key past 255 bytes, which the broker cannot take', () => {
    const long = 'a'.repeat(256);
    expect(() => parseDestination('queue', { broker: 'nats', subject: long })).toThrow(/subject must be at most 255 bytes/);
    expect(() => parseDestination('queue', { broker: 'rabbitmq', exchange: long, routing_key: 'k' })).toThrow(
      /exchange must be at most 255/,
    );
    expect(() => parseDestination('queue', { broker: 'rabbitmq', exchange: 'x', routing_key: 'é'.repeat(128) })).toThrow(
      /routing_key must be at most 255/,
    );
    expect(parseDestination('queue', { broker: 'nats', subject: 'a'.repeat(255) }).config).toMatchObject({ subject: 'a'.repeat(255) });
    expect(parseDestination('queue', { broker: 'rabbitmq', exchange: 'x', routing_key: 'é'.repeat(127) }).config).toMatchObject({
      exchange: 'x',
    });
  });

  it('take a subject one can publish to, and refuse a wildcard the broker would refuse on every delivery', () => {
    expect(parseDestination('queue', { broker: 'nats', subject: 'orders.created-v2' }).config).toMatchObject({
      subject: 'orders.created-v2',
    });
    for (const subject of ['orders.*', 'orders.>', '*', 'orders..x', '.orders'])
      expect(() => parseDestination('queue', { broker: 'nats', subject }), subject).toThrow(ValidationError);
  });
});
