import { describe, expect, it } from 'vitest';
import { withoutUrlCredentials } from './url-credentials.js';

describe('withoutUrlCredentials', () => {
  it('hides the user information and the secret query values of every URL in a text', () => {
    expect(withoutUrlCredentials('Redis at redis://u:pw@cache.example.com:6379?password=TopSecret&db=2 is unreachable')).toBe(
      'Redis at redis://***@cache.example.com:6379?password=***&db=2 is unreachable',
    );
    expect(withoutUrlCredentials('nats://a:4222?token=t0k, amqp://guest:guest@mq/vh?heartbeat=30&auth_key=k')).toBe(
      'nats://a:4222?token=***, amqp://***@mq/vh?heartbeat=30&auth_key=***',
    );
    expect(withoutUrlCredentials('no url here: 5 & 6 ? yes')).toBe('no url here: 5 & 6 ? yes');
  });
});
