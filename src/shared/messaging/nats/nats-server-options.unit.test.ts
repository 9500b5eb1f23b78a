import { describe, expect, it } from 'vitest';
import { natsServerOptions } from './nats-server-options.js';

describe('natsServerOptions', () => {
  it('hands the user and password of a URL over apart, decoded, and the server without them', () => {
    expect(natsServerOptions('nats://intake:p%40ss%3Aword@nats:4222')).toEqual({
      servers: ['nats://nats:4222'],
      user: 'intake',
      pass: 'p@ss:word',
    });
  });

  it('takes a user without a password for a token', () => {
    expect(natsServerOptions('tls://s3cr3t@nats.example.com')).toEqual({ servers: ['tls://nats.example.com'], token: 's3cr3t' });
  });

  it('reads each server of a comma list, leaving those without credentials as written', () => {
    expect(natsServerOptions('nats://a:4222, nats://u:p@b:4222,c:4222')).toEqual({
      servers: ['nats://a:4222', 'nats://b:4222', 'c:4222'],
      user: 'u',
      pass: 'p',
    });
    expect(natsServerOptions(['nats://a:4222'])).toEqual({ servers: ['nats://a:4222'] });
  });
});
